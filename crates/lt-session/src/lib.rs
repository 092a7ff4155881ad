//! The lt BitTorrent session (under construction).
