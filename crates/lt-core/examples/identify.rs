//! Names the client behind each peer id given on the command line (as 20
//! characters or 40 hex digits):
//!
//! ```text
//! cargo run -p lt-core --example identify -- -qB4250-abcdefghijkl
//! ```

use lt_core::{PeerId, identify_client};

fn main() {
    for arg in std::env::args().skip(1) {
        let id = PeerId::from_slice(arg.as_bytes()).or_else(|| arg.parse().ok());
        match id {
            Some(id) => match identify_client(&id) {
                Some(client) => println!("{id:?}: {client}"),
                None => println!("{id:?}: unknown client"),
            },
            None => println!("{arg:?}: not a peer id (20 bytes or 40 hex digits)"),
        }
    }
}
