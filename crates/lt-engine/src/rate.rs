//! Transfer rates and token buckets.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back a rate looks.
const WINDOW: Duration = Duration::from_secs(3);

/// A byte counter with a rate over the last few seconds, sampled at every tick.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rate {
    total: u64,
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    pub(crate) const fn add(&mut self, bytes: u64) {
        self.total = self.total.saturating_add(bytes);
    }

    pub(crate) const fn total(&self) -> u64 {
        self.total
    }

    /// Records a sample; call at every tick.
    pub(crate) fn tick(&mut self, now: Instant) {
        self.samples.push_back((now, self.total));
        while self
            .samples
            .front()
            .is_some_and(|&(t, _)| now.saturating_duration_since(t) > WINDOW)
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window.
    pub(crate) fn rate(&self) -> u64 {
        let (Some(&(t0, b0)), Some(&(t1, b1))) = (self.samples.front(), self.samples.back()) else {
            return 0;
        };
        let secs = t1.saturating_duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            return 0;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let r = (b1.saturating_sub(b0) as f64 / secs) as u64;
        r
    }
}

/// A token bucket: `rate` bytes per second with one second of burst; a rate of 0 is
/// unlimited.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    rate: u64,
    tokens: i64,
    last: Option<Instant>,
}

impl Bucket {
    pub(crate) const fn new(rate: u64) -> Self {
        Self {
            rate,
            tokens: 0,
            last: None,
        }
    }

    pub(crate) const fn set_rate(&mut self, rate: u64) {
        self.rate = rate;
    }

    pub(crate) const fn rate(&self) -> u64 {
        self.rate
    }

    pub(crate) fn refill(&mut self, now: Instant) {
        if self.rate == 0 {
            return;
        }
        let rate = i64::try_from(self.rate).unwrap_or(i64::MAX);
        let Some(last) = self.last else {
            self.last = Some(now);
            self.tokens = rate / 10;
            return;
        };
        let ms = i64::try_from(now.saturating_duration_since(last).as_millis()).unwrap_or(i64::MAX);
        self.tokens = self
            .tokens
            .saturating_add(rate.saturating_mul(ms) / 1000)
            .min(rate);
        self.last = Some(now);
    }

    /// Whether there is something to spend.
    pub(crate) const fn available(&self) -> bool {
        self.rate == 0 || self.tokens > 0
    }

    pub(crate) fn spend(&mut self, bytes: u64) {
        if self.rate != 0 {
            self.tokens = self
                .tokens
                .saturating_sub(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }
}
