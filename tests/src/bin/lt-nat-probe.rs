//! `lt-nat-probe MODE [--port P] [--lifetime SECS] [--occupy CONTROL_URL]`: drives lt-nat's
//! tokio `PortMapper` against whatever gateway is on this host's default route, for
//! `tests/tests/nat_interop.rs`, which runs it inside a network namespace with
//! `ip netns exec`.
//!
//! MODE is `upnp` (UPnP only), `natpmp` (NAT-PMP only) or `pcp` (PCP, falling back to
//! NAT-PMP). The probe maps TCP and UDP port P (default 40000), waits for the external address
//! and the mappings, looks the TCP one up (UPnP), prints `{"step":"mapped",...}` and waits for
//! a line on stdin (the test inspects the gateway's firewall meanwhile), waits for one renewal
//! of each mapping, deletes the TCP one, shuts down (which must delete the others) and prints
//! `{"step":"done"}`. Every event is printed as a JSON line `{"event": "..."}`. With
//! `--occupy`, it first maps TCP port P+1 to another LAN address (192.168.77.3) by raw SOAP,
//! then adds a third mapping that asks for P+1 and must resolve the conflict on another port.
//!
//! Every wait is bounded; on a timeout it prints `{"error": ...}` and exits with status 1.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use lt_nat::driver::{DriverConfig, PortMapper};
use lt_nat::http::{HttpUrl, parse_response};
use lt_nat::soap::Action;
use lt_nat::{Event, MappingIndex, PmpConfig, Protocol, Transport, UpnpConfig};
use serde_json::json;
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(20);

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let code = match runtime {
        Ok(rt) => match rt.block_on(run()) {
            Ok(()) => 0,
            Err(e) => {
                out(json!({ "error": e }));
                1
            }
        },
        Err(e) => {
            out(json!({ "error": e.to_string() }));
            1
        }
    };
    std::process::exit(code);
}

fn out(value: serde_json::Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{value}");
    let _ = stdout.flush();
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().cloned().unwrap_or_default();
    let port: u16 = arg(&args, "--port")
        .map_or(Ok(40000), |p| p.parse())
        .map_err(|e| format!("--port: {e}"))?;
    let lifetime = Duration::from_secs(
        arg(&args, "--lifetime")
            .map_or(Ok(6), |p| p.parse())
            .map_err(|e| format!("--lifetime: {e}"))?,
    );
    let occupy = arg(&args, "--occupy");

    let mut config = DriverConfig {
        rng_seed: Some([9; 32]),
        ..DriverConfig::default()
    };
    match mode.as_str() {
        "upnp" => {
            config.natpmp = None;
            config.upnp = Some(UpnpConfig {
                lease_duration: lifetime,
                description: "lt-nat interop".to_owned(),
                ..UpnpConfig::default()
            });
        }
        "natpmp" | "pcp" => {
            config.upnp = None;
            config.natpmp = Some(PmpConfig {
                use_pcp: mode == "pcp",
                lifetime,
                max_attempts: 4,
                ..PmpConfig::default()
            });
        }
        other => return Err(format!("unknown mode {other:?}: upnp, natpmp or pcp")),
    }

    if let Some(control) = &occupy {
        occupy_port(control, port + 1)?;
        out(json!({ "step": "occupied", "port": port + 1 }));
    }

    let (mapper, mut events) = PortMapper::start(config).await.map_err(|e| e.to_string())?;
    let tcp = mapper
        .add_mapping(Protocol::Tcp, port, port)
        .await
        .map_err(|e| e.to_string())?;
    let udp = mapper
        .add_mapping(Protocol::Udp, port, port)
        .await
        .map_err(|e| e.to_string())?;
    let mut wanted = vec![tcp, udp];
    let conflict = if occupy.is_some() {
        let c = mapper
            .add_mapping(Protocol::Tcp, port + 1, port + 2)
            .await
            .map_err(|e| e.to_string())?;
        wanted.push(c);
        Some(c)
    } else {
        None
    };

    // External address and every mapping.
    let mut external = false;
    let mut mapped: Vec<MappingIndex> = Vec::new();
    while !(external && wanted.iter().all(|w| mapped.contains(w))) {
        match next(&mut events).await? {
            Event::ExternalIp { .. } => external = true,
            Event::Mapped { index, .. } => mapped.push(index),
            Event::MapFailed { index, error, .. } => {
                return Err(format!("mapping {} failed: {error}", index.0));
            }
            _ => {}
        }
    }
    if mode == "upnp" {
        mapper
            .lookup_mapping(tcp)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            if let Event::MappingEntry { entry, .. } = next(&mut events).await? {
                entry.map_err(|e| format!("lookup: {e}"))?;
                break;
            }
        }
    }
    out(json!({ "step": "mapped", "conflict": conflict.map(|c| c.0) }));
    let mut line = String::new();
    let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;

    // One renewal per mapping (lifetime / 2 after it was made).
    let mut renewals = 0;
    while renewals < wanted.len() {
        if let Event::Log { message, .. } = next(&mut events).await?
            && message.starts_with("renewing")
        {
            renewals += 1;
        }
    }
    // Let the renewals complete, then check the mappings still exist (UPnP).
    tokio::time::sleep(Duration::from_millis(500)).await;
    if mode == "upnp" {
        mapper
            .lookup_mapping(tcp)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            if let Event::MappingEntry { entry, .. } = next(&mut events).await? {
                entry.map_err(|e| format!("lookup after renewal: {e}"))?;
                break;
            }
        }
    }
    out(json!({ "step": "renewed", "renewals": renewals }));

    // Delete the TCP mapping explicitly; shutdown must delete the others.
    mapper
        .delete_mapping(tcp)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        if let Event::Unmapped { index, .. } = next(&mut events).await?
            && index == tcp
        {
            break;
        }
    }
    let started = std::time::Instant::now();
    mapper.shutdown(Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    let mut unmapped = vec![tcp];
    while let Ok(event) = events.try_recv() {
        out(describe(&event));
        if let Event::Unmapped { index, .. } = event {
            unmapped.push(index);
        }
    }
    if !wanted.iter().all(|w| unmapped.contains(w)) {
        return Err(format!(
            "shutdown left mappings: unmapped {unmapped:?} of {wanted:?}"
        ));
    }
    let millis = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    out(json!({ "step": "shutdown", "millis": millis }));
    out(json!({ "step": "done" }));
    Ok(())
}

/// The next event, printed; an error after [`WAIT`].
async fn next(events: &mut Receiver<Event>) -> Result<Event, String> {
    let event = tokio::time::timeout(WAIT, events.recv())
        .await
        .map_err(|_| "timed out waiting for an event".to_owned())?
        .ok_or("event channel closed")?;
    out(describe(&event));
    Ok(event)
}

fn transport(t: Transport) -> &'static str {
    match t {
        Transport::NatPmp => "natpmp",
        Transport::Pcp => "pcp",
        Transport::Upnp => "upnp",
        _ => "other",
    }
}

fn describe(event: &Event) -> serde_json::Value {
    match event {
        Event::Mapped {
            index,
            transport: t,
            protocol,
            external_port,
            local_port,
        } => json!({ "event": "mapped", "index": index.0, "transport": transport(*t),
            "protocol": protocol.as_str(), "external_port": external_port, "local_port": local_port }),
        Event::MapFailed {
            index,
            transport: t,
            error,
        } => json!({ "event": "map_failed", "index": index.0, "transport": transport(*t),
            "error": error.to_string() }),
        Event::Unmapped {
            index,
            transport: t,
        } => {
            json!({ "event": "unmapped", "index": index.0, "transport": transport(*t) })
        }
        Event::ExternalIp {
            address,
            transport: t,
        } => {
            json!({ "event": "external_ip", "address": address.to_string(), "transport": transport(*t) })
        }
        Event::MappingEntry { index, entry } => match entry {
            Ok(e) => json!({ "event": "mapping_entry", "index": index.0,
                "internal_client": e.internal_client.to_string(), "internal_port": e.internal_port,
                "lease": e.lease_duration, "description": e.description }),
            Err(err) => {
                json!({ "event": "mapping_entry", "index": index.0, "error": err.to_string() })
            }
        },
        Event::Log {
            transport: t,
            message,
        } => {
            json!({ "event": "log", "transport": transport(*t), "message": message })
        }
        other => json!({ "event": format!("{other:?}") }),
    }
}

/// Maps TCP `port` to 192.168.77.3 with a raw SOAP AddPortMapping, as another LAN host would.
fn occupy_port(control: &str, port: u16) -> Result<(), String> {
    let url = HttpUrl::parse(control).map_err(|e| format!("--occupy: {e}"))?;
    let action = Action::AddPortMapping {
        external_port: port,
        protocol: Protocol::Tcp,
        internal_port: port,
        internal_client: "192.168.77.3".parse().map_err(|_| "address")?,
        description: "someone else".to_owned(),
        lease_duration: 60,
    };
    let request = action.request(&url, "urn:schemas-upnp-org:service:WANIPConnection:2");
    let mut stream = TcpStream::connect_timeout(&url.socket_addr(), Duration::from_secs(5))
        .map_err(|e| format!("occupy connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream.write_all(&request).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let _ = stream.take(1 << 20).read_to_end(&mut buf);
    let resp = parse_response(&buf, true)
        .map_err(|e| e.to_string())?
        .ok_or("occupy: no response")?;
    action
        .parse_response(&resp)
        .map(|_| ())
        .map_err(|e| format!("occupy: {e}"))
}
