//! `Payload::decode` on arbitrary bytes: returns Ok or Err, never panics. When it returns Ok,
//! the payload must encode, the encoding must decode again to the same payload, and encoding
//! that must give the same bytes again.
//!
//! Payloads are compared through their `Debug` text, which is exact for every field and treats
//! NaN as equal to NaN and keeps the sign of zero (`-0.0`), as Sparkplug comparisons should.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparkplug::Payload;

fuzz_target!(|data: &[u8]| {
    let Ok(first) = Payload::decode(data) else {
        return;
    };
    let bytes = first.encode().expect("a decoded payload must encode");
    let second = Payload::decode(&bytes).expect("our own encoding must decode");
    assert_eq!(
        format!("{first:?}"),
        format!("{second:?}"),
        "decode(encode(p)) != p"
    );
    let again = second.encode().expect("a decoded payload must encode");
    assert_eq!(bytes, again, "encoding is not stable");
});
