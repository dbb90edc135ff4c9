//! Prints the ABI 91 layout computed from this crate's Rust types (`size_of` / `align_of` / `offset_of`), one
//! line per struct and field, in the format of `abi91-layout.txt`; with `--consts`, every constant in the
//! format of `abi91-consts.txt`. Diff it against your kernel's values to check the crate against it.
//!
//! ```text
//! cargo run --example abi_layout
//! cargo run --example abi_layout -- --consts
//! ```

use ghost_shm::abi;

fn main() {
    let consts = std::env::args().skip(1).any(|a| a == "--consts");
    if consts {
        println!("# ghOSt ABI {} constants (name value), from ghost-shm", abi::GHOST_VERSION);
        for (name, value) in abi::CONSTS {
            println!("{name} {value}");
        }
    } else {
        println!(
            "# ghOSt ABI {} (GHOST_VERSION {}), {}: sizeof/alignof/offsetof of each shared struct, from ghost-shm",
            abi::GHOST_VERSION,
            abi::GHOST_VERSION,
            std::env::consts::ARCH
        );
        abi::for_each_layout_line(|l| println!("{l}"));
    }
}
