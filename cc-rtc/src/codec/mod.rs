//! Audio codecs for calls: G.711 µ-law/A-law (always) and Opus (cargo feature `opus`).
//!
//! An [`AudioEncoder`] turns one 20 ms frame of mono 16-bit PCM at the codec's rate into one
//! RTP payload; an [`AudioDecoder`] turns a payload back into PCM.

pub mod g711;
#[cfg(feature = "opus")]
mod opus;

use std::fmt;

/// An audio codec the media engine can negotiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 µ-law, 8 kHz.
    Pcmu,
    /// G.711 A-law, 8 kHz.
    Pcma,
    /// Opus, 48 kHz (needs the `opus` feature).
    Opus,
}

impl AudioCodec {
    /// The name in SDP and in `CallStats::audio_codec` (`PCMU`, `PCMA`, `opus`).
    pub const fn name(self) -> &'static str {
        match self {
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::Pcma => "PCMA",
            AudioCodec::Opus => "opus",
        }
    }

    /// The PCM sample rate the codec runs at (and the RTP clock rate).
    pub const fn sample_rate(self) -> u32 {
        match self {
            AudioCodec::Pcmu | AudioCodec::Pcma => 8_000,
            AudioCodec::Opus => 48_000,
        }
    }

    /// Samples in one 20 ms frame.
    pub const fn frame_samples(self) -> usize {
        (self.sample_rate() / 50) as usize
    }

    /// Whether this build can encode and decode the codec.
    pub const fn available(self) -> bool {
        match self {
            AudioCodec::Pcmu | AudioCodec::Pcma => true,
            AudioCodec::Opus => cfg!(feature = "opus"),
        }
    }
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a codec could not be set up or a payload not be coded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

/// Encodes 20 ms PCM frames for one codec.
pub struct AudioEncoder {
    codec: AudioCodec,
    #[cfg(feature = "opus")]
    opus: Option<opus::OpusEncoder>,
}

impl fmt::Debug for AudioEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioEncoder")
            .field("codec", &self.codec)
            .finish()
    }
}

impl AudioEncoder {
    /// An encoder for `codec`; fails for Opus without the `opus` feature.
    pub fn new(codec: AudioCodec) -> Result<Self, CodecError> {
        match codec {
            AudioCodec::Pcmu | AudioCodec::Pcma => Ok(AudioEncoder {
                codec,
                #[cfg(feature = "opus")]
                opus: None,
            }),
            #[cfg(feature = "opus")]
            AudioCodec::Opus => Ok(AudioEncoder {
                codec,
                opus: Some(opus::OpusEncoder::new()?),
            }),
            #[cfg(not(feature = "opus"))]
            AudioCodec::Opus => Err(CodecError(
                "Opus needs the `opus` cargo feature of cc-rtc".into(),
            )),
        }
    }

    /// The codec.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// Encodes one frame (`pcm.len() == codec.frame_samples()`), appending the payload to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self.codec {
            AudioCodec::Pcmu => g711::encode_mulaw(pcm, out),
            AudioCodec::Pcma => g711::encode_alaw(pcm, out),
            AudioCodec::Opus => {
                #[cfg(feature = "opus")]
                if let Some(enc) = self.opus.as_mut() {
                    return enc.encode(pcm, out);
                }
                return Err(CodecError("no Opus encoder in this build".into()));
            }
        }
        Ok(())
    }
}

/// Decodes RTP payloads of one codec to PCM.
pub struct AudioDecoder {
    codec: AudioCodec,
    #[cfg(feature = "opus")]
    opus: Option<opus::OpusDecoder>,
}

impl fmt::Debug for AudioDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioDecoder")
            .field("codec", &self.codec)
            .finish()
    }
}

impl AudioDecoder {
    /// A decoder for `codec`; fails for Opus without the `opus` feature.
    pub fn new(codec: AudioCodec) -> Result<Self, CodecError> {
        match codec {
            AudioCodec::Pcmu | AudioCodec::Pcma => Ok(AudioDecoder {
                codec,
                #[cfg(feature = "opus")]
                opus: None,
            }),
            #[cfg(feature = "opus")]
            AudioCodec::Opus => Ok(AudioDecoder {
                codec,
                opus: Some(opus::OpusDecoder::new()?),
            }),
            #[cfg(not(feature = "opus"))]
            AudioCodec::Opus => Err(CodecError(
                "Opus needs the `opus` cargo feature of cc-rtc".into(),
            )),
        }
    }

    /// The codec.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// Decodes one payload, appending the PCM to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        match self.codec {
            AudioCodec::Pcmu => g711::decode_mulaw(payload, out),
            AudioCodec::Pcma => g711::decode_alaw(payload, out),
            AudioCodec::Opus => {
                #[cfg(feature = "opus")]
                if let Some(dec) = self.opus.as_mut() {
                    return dec.decode(payload, out);
                }
                return Err(CodecError("no Opus decoder in this build".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                (8000.0 * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn g711_encoders_round_trip_a_frame() {
        for codec in [AudioCodec::Pcmu, AudioCodec::Pcma] {
            let pcm = tone(codec.sample_rate(), 440.0, codec.frame_samples());
            let mut enc = AudioEncoder::new(codec).unwrap();
            let mut dec = AudioDecoder::new(codec).unwrap();
            let mut payload = Vec::new();
            enc.encode(&pcm, &mut payload).unwrap();
            assert_eq!(payload.len(), 160, "{codec}");
            let mut back = Vec::new();
            dec.decode(&payload, &mut back).unwrap();
            assert_eq!(back.len(), 160);
            let max_err = pcm
                .iter()
                .zip(&back)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .max()
                .unwrap();
            assert!(max_err < 300, "{codec}: max error {max_err}");
        }
    }

    #[test]
    fn codec_facts() {
        assert_eq!(AudioCodec::Pcmu.frame_samples(), 160);
        assert_eq!(AudioCodec::Opus.frame_samples(), 960);
        assert_eq!(AudioCodec::Opus.name(), "opus");
        assert_eq!(AudioCodec::Opus.available(), cfg!(feature = "opus"));
        assert_eq!(
            AudioEncoder::new(AudioCodec::Opus).is_ok(),
            cfg!(feature = "opus")
        );
    }

    #[cfg(feature = "opus")]
    #[test]
    fn opus_round_trip_keeps_the_tone() {
        let codec = AudioCodec::Opus;
        let mut enc = AudioEncoder::new(codec).unwrap();
        let mut dec = AudioDecoder::new(codec).unwrap();
        let pcm = tone(48_000, 440.0, 960 * 10);
        let mut decoded = Vec::new();
        for frame in pcm.chunks(960) {
            let mut payload = Vec::new();
            enc.encode(frame, &mut payload).unwrap();
            assert!(!payload.is_empty() && payload.len() < 400);
            dec.decode(&payload, &mut decoded).unwrap();
        }
        assert_eq!(decoded.len(), pcm.len());
        // The codec delays the signal; compare energy of the last frames instead of samples.
        let energy: f64 = decoded[960 * 5..]
            .iter()
            .map(|&s| f64::from(s).powi(2))
            .sum();
        let reference: f64 = pcm[960 * 5..].iter().map(|&s| f64::from(s).powi(2)).sum();
        assert!(energy > reference * 0.5 && energy < reference * 1.5);
    }
}
