//! UPnP IGD, NAT-PMP and PCP port mapping (under construction).
