//! Property tests of the codec: encoding then decoding is the identity, for frames and for
//! every typed message; and any byte string, cut into reads any way, gives frames or errors,
//! never a panic.

use chargeops_ykc::frame::{self, CrcOrder, Decoder, Encryption, Frame, MAX_BODY};
use chargeops_ykc::msg::{Message, types};
use proptest::prelude::*;

const TYPES: [u8; 26] = [
    types::LOGIN,
    types::LOGIN_REPLY,
    types::HEARTBEAT,
    types::HEARTBEAT_REPLY,
    types::BILLING_CHECK,
    types::BILLING_CHECK_REPLY,
    types::BILLING_REQUEST,
    types::BILLING_MODEL,
    types::REALTIME_REQUEST,
    types::REALTIME,
    types::START_REQUEST,
    types::START_CONFIRM,
    types::REMOTE_START_REPLY,
    types::REMOTE_START,
    types::REMOTE_STOP_REPLY,
    types::REMOTE_STOP,
    types::TRANSACTION_RECORD,
    types::TRANSACTION_ACK,
    types::WORK_PARAMS_REPLY,
    types::WORK_PARAMS,
    types::TIME_SYNC_REPLY,
    types::TIME_SYNC,
    types::BILLING_SET_REPLY,
    types::BILLING_SET,
    types::REBOOT_REPLY,
    types::REBOOT,
];

/// The body length of a frame type's layout.
fn layout_len(t: u8) -> usize {
    Message::decode(t, &[0u8; 256])
        .map(|m| m.encode_body().len())
        .unwrap_or(0)
}

fn order() -> impl Strategy<Value = CrcOrder> {
    prop_oneof![Just(CrcOrder::LowFirst), Just(CrcOrder::HighFirst)]
}

fn any_frame() -> impl Strategy<Value = Frame> {
    (
        any::<u16>(),
        any::<bool>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..=MAX_BODY),
    )
        .prop_map(|(seq, enc, frame_type, body)| Frame {
            seq,
            encryption: if enc {
                Encryption::TripleDes
            } else {
                Encryption::Plain
            },
            frame_type,
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frame_encode_then_decode_is_identity(f in any_frame(), order in order()) {
        let bytes = frame::encode(&f, order).unwrap();
        let (d, used) = frame::decode(&bytes).unwrap();
        prop_assert_eq!(used, bytes.len());
        // A CRC whose two bytes are equal reads the same in either order: nothing tells them
        // apart, and the decoder reports low byte first.
        let crc = &bytes[bytes.len() - 2..];
        if crc[0] != crc[1] {
            prop_assert_eq!(d.crc_order, order);
        }
        prop_assert_eq!(&d.frame, &f);
    }

    #[test]
    fn message_decode_then_encode_is_identity(
        i in 0..TYPES.len(),
        seed in proptest::collection::vec(any::<u8>(), 256),
    ) {
        let t = TYPES[i];
        let n = layout_len(t);
        prop_assert!(n > 0);
        let body = &seed[..n];
        let m = Message::decode(t, body).unwrap();
        prop_assert_eq!(m.frame_type(), t);
        let again = m.encode_body();
        prop_assert_eq!(&again[..], body);
        prop_assert_eq!(Message::decode(t, &again).unwrap(), m);
    }

    #[test]
    fn frames_survive_any_split(
        frames in proptest::collection::vec(any_frame(), 1..6),
        cuts in proptest::collection::vec(1usize..40, 1..50),
        order in order(),
    ) {
        let mut stream = Vec::new();
        for f in &frames {
            stream.extend(frame::encode(f, order).unwrap());
        }
        let mut d = Decoder::new();
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut cut = cuts.iter().cycle();
        while !rest.is_empty() {
            let n = (*cut.next().unwrap()).min(rest.len());
            d.push(&rest[..n]);
            rest = &rest[n..];
            while let Some(r) = d.next_frame() {
                prop_assert!(r.is_ok(), "error on a clean stream: {:?}", r);
                got.push(r.unwrap().frame);
            }
        }
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn any_bytes_give_frames_or_errors_never_a_panic(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        chunk in 1usize..300,
    ) {
        let mut d = Decoder::new();
        for piece in data.chunks(chunk) {
            d.push(piece);
            while let Some(r) = d.next_frame() {
                if let Ok(decoded) = r {
                    let _ = Message::decode(decoded.frame.frame_type, &decoded.frame.body);
                }
            }
            prop_assert!(d.buffered() <= frame::MAX_FRAME + chunk);
        }
    }

    #[test]
    fn bodies_of_any_bytes_never_panic(t in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(m) = Message::decode(t, &body) {
            prop_assert_eq!(m.frame_type(), t);
        }
    }

    #[test]
    fn garbage_before_a_frame_costs_only_the_garbage(
        junk in proptest::collection::vec(any::<u8>().prop_filter("no start byte", |b| *b != 0x68), 0..100),
        f in any_frame(),
    ) {
        let mut stream = junk.clone();
        stream.extend(frame::encode(&f, CrcOrder::LowFirst).unwrap());
        let mut d = Decoder::new();
        d.push(&stream);
        let frames: Vec<_> = std::iter::from_fn(|| d.next_frame()).filter_map(Result::ok).collect();
        prop_assert_eq!(frames.len(), 1);
        prop_assert_eq!(&frames[0].frame, &f);
    }
}
