//! Sans-IO core of the lt BitTorrent engine (under construction).
