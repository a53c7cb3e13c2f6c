//! Corrupt copies of a valid file, for the readers' tests: every reader
//! must answer each with a value or an error, never a panic, a hang or an
//! allocation sized by a corrupt header.

/// `count` corrupt variants of `valid`, reproducible from `seed`:
/// truncations, bytes overwritten with random or extreme values (header
/// fields of all ones or zeros), bytes inserted and removed.
pub fn variants(valid: &[u8], count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |below: usize| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % below.max(1) as u64) as usize
    };
    (0..count)
        .map(|_| {
            let mut v = valid.to_vec();
            for _ in 0..1 + next(3) {
                let at = next(v.len() + 1);
                match next(6) {
                    0 => v.truncate(at),
                    1 if at < v.len() => v[at] = next(256) as u8,
                    2 => {
                        // A field of extreme values, most likely in a header.
                        let at = next(v.len().min(64) + 1);
                        let fill = [0x00, 0xFF, 0x7F, 0x80][next(4)];
                        for b in v.iter_mut().skip(at).take(1 + next(8)) {
                            *b = fill;
                        }
                    }
                    3 => {
                        let extra: Vec<u8> = (0..1 + next(16)).map(|_| next(256) as u8).collect();
                        v.splice(at..at, extra);
                    }
                    4 if at < v.len() => {
                        let end = (at + 1 + next(16)).min(v.len());
                        v.drain(at..end);
                    }
                    _ => {
                        // A decimal number, for text formats' headers.
                        let digits = ["0", "-1", "99999999999999999999", "4294967296", "1e40"];
                        let text = digits[next(digits.len())].as_bytes();
                        let at = at.min(v.len());
                        v.splice(at..at, text.iter().copied());
                    }
                }
            }
            v
        })
        .collect()
}
