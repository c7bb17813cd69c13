//! G.711 µ-law (PCMU) and A-law (PCMA), ITU-T G.711, 8 kHz, one byte per sample.
//!
//! The encoders take 16-bit linear PCM; the decoders give it back. Both laws quantize the
//! magnitude into eight segments of sixteen steps, so the round-trip error grows with the
//! amplitude (at most half a step of the sample's segment).

const MULAW_BIAS: i32 = 0x84;
const MULAW_CLIP: i32 = 32635;

/// Encodes one linear sample as µ-law.
pub fn mulaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(MULAW_CLIP) + MULAW_BIAS;
    let exponent = segment(s >> 7);
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as i32 | mantissa) as u8
}

/// Decodes one µ-law byte to a linear sample.
pub fn mulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + MULAW_BIAS) << exponent) - MULAW_BIAS;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// Encodes one linear sample as A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    // A-law works on 13-bit magnitudes.
    let s = i32::from(sample) >> 3;
    let (sign, magnitude) = if s >= 0 { (0x80, s) } else { (0x00, -s - 1) };
    let magnitude = magnitude.min(0x0fff);
    let byte = if magnitude < 32 {
        (magnitude >> 1) as u8
    } else {
        let exponent = segment(magnitude >> 5) + 1;
        let mantissa = (magnitude >> exponent) & 0x0f;
        ((exponent << 4) as i32 | mantissa) as u8
    };
    (byte | sign) ^ 0x55
}

/// Decodes one A-law byte to a linear sample.
pub fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = i32::from((a >> 4) & 0x07);
    let mantissa = i32::from(a & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if a & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

/// The segment (0..=7) of a value: the position of its highest set bit, capped at 7.
fn segment(value: i32) -> u32 {
    let mut seg = 0;
    let mut v = value;
    while v > 1 && seg < 7 {
        v >>= 1;
        seg += 1;
    }
    seg
}

/// Encodes a frame of linear samples as µ-law, appending to `out`.
pub fn encode_mulaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| mulaw_encode(s)));
}

/// Decodes a µ-law payload, appending linear samples to `out`.
pub fn decode_mulaw(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&b| mulaw_decode(b)));
}

/// Encodes a frame of linear samples as A-law, appending to `out`.
pub fn encode_alaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| alaw_encode(s)));
}

/// Decodes an A-law payload, appending linear samples to `out`.
pub fn decode_alaw(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&b| alaw_decode(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest round-trip error allowed for a sample: half a quantization step of its
    /// segment plus rounding.
    fn allowed_error(sample: i16, first_step: i32) -> i32 {
        let magnitude = i32::from(sample).abs();
        let mut step = first_step;
        let mut limit = 32 * first_step;
        while magnitude >= limit && step < 1024 {
            step *= 2;
            limit *= 2;
        }
        step
    }

    #[test]
    fn mulaw_round_trip_stays_within_one_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let back = mulaw_decode(mulaw_encode(s));
            let err = (i32::from(s) - i32::from(back)).abs();
            let clipped = i32::from(s).abs() > MULAW_CLIP;
            assert!(
                clipped || err <= allowed_error(s, 8),
                "µ-law {s} -> {back} (error {err})"
            );
        }
    }

    #[test]
    fn alaw_round_trip_stays_within_one_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let back = alaw_decode(alaw_encode(s));
            let err = (i32::from(s) - i32::from(back)).abs();
            assert!(
                err <= allowed_error(s, 16),
                "A-law {s} -> {back} (error {err})"
            );
        }
    }

    #[test]
    fn known_code_points() {
        // Silence and full scale, from the G.711 tables.
        assert_eq!(mulaw_encode(0), 0xff);
        assert_eq!(mulaw_decode(0xff), 0);
        assert_eq!(mulaw_encode(i16::MAX), 0x80);
        assert_eq!(mulaw_encode(i16::MIN), 0x00);
        assert_eq!(mulaw_decode(0x80), 32124);
        assert_eq!(mulaw_decode(0x00), -32124);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_encode(i16::MAX), 0xaa);
        assert_eq!(alaw_encode(i16::MIN), 0x2a);
        assert_eq!(alaw_decode(0xaa), 32256);
        assert_eq!(alaw_decode(0x2a), -32256);
    }

    #[test]
    fn every_code_decodes_and_re_encodes_to_itself() {
        for b in 0..=255u8 {
            let m = mulaw_decode(b);
            // µ-law has two zeros (0x7f and 0xff); both decode to 0 and re-encode to 0xff.
            if b != 0x7f {
                assert_eq!(mulaw_encode(m), b, "µ-law code {b:#04x} -> {m}");
            }
            let a = alaw_decode(b);
            assert_eq!(alaw_encode(a), b, "A-law code {b:#04x} -> {a}");
        }
    }

    #[test]
    fn frames_round_trip() {
        let pcm: Vec<i16> = (0..160)
            .map(|i| ((i * 400) % 20000 - 10000) as i16)
            .collect();
        let mut bytes = Vec::new();
        encode_mulaw(&pcm, &mut bytes);
        assert_eq!(bytes.len(), 160);
        let mut back = Vec::new();
        decode_mulaw(&bytes, &mut back);
        assert_eq!(back.len(), 160);
        bytes.clear();
        encode_alaw(&pcm, &mut bytes);
        back.clear();
        decode_alaw(&bytes, &mut back);
        for (a, b) in pcm.iter().zip(&back) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= 512);
        }
    }
}
