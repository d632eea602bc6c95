//! The native OpenPGP path of the controller (enseal_sops::keys::openpgp): a tenant's `*.asc`
//! key entries and the `enc` of a pgp stanza, which anyone who can edit an encrypted file
//! writes (see [`enseal_fuzz::pgp_native`]).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // rpgp's errors (snafu) capture a backtrace each when RUST_BACKTRACE=1 is set, as it
        // is in the dev shells: the first run did 9 inputs/s and resolving the frames against
        // this 330 MB debug binary's DWARF took the process to 885 MB, past -rss_limit_mb=512,
        // after 29 inputs. RUST_LIB_BACKTRACE=0 turns the captures off (snafu and std read it
        // before RUST_BACKTRACE) and leaves libFuzzer's panic reports as they are.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    },
    |data: &[u8]| enseal_fuzz::pgp_native(data)
);
