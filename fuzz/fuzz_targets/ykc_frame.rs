//! Feeds arbitrary bytes through everything the gateway does with a YKC byte stream: the
//! streaming decoder (cut into reads at a point the input chooses), the typed read of every
//! frame it yields, the re-encoding of what was read, and 3DES decryption of the body with a
//! fixed key. Any panic is a bug.
//!
//! Run with `cargo +nightly fuzz run ykc_frame` from the repository root.

#![no_main]

use chargeops_ykc::crypto::Key;
use chargeops_ykc::frame::{self, CrcOrder, Decoder};
use chargeops_ykc::msg::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut).max(1);
    let key = Key::new(b"chargeops-fuzz-3des-key!").ok();
    let mut decoder = Decoder::new();
    for piece in rest.chunks(chunk) {
        decoder.push(piece);
        while let Some(next) = decoder.next_frame() {
            let Ok(decoded) = next else { continue };
            let f = decoded.frame;
            // What decodes must encode back to the same frame.
            if let Ok(bytes) = frame::encode(&f, CrcOrder::LowFirst) {
                assert!(frame::decode(&bytes).is_ok());
            }
            if let Some(key) = &key {
                let _ = key.decrypt(&f.body);
            }
            if let Ok(m) = Message::decode(f.frame_type, &f.body) {
                let body = m.encode_body();
                assert_eq!(Message::decode(f.frame_type, &body).ok(), Some(m));
            }
        }
    }
});
