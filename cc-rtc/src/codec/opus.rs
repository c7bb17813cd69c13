//! Opus through libopus (`opus` crate), mono, 48 kHz, 20 ms frames.

use super::CodecError;

/// The largest Opus payload we produce for one 20 ms frame.
const MAX_PAYLOAD: usize = 1275;

fn err(e: ::opus::Error) -> CodecError {
    CodecError(format!("opus: {e}"))
}

pub(super) struct OpusEncoder(::opus::Encoder);

impl OpusEncoder {
    pub(super) fn new() -> Result<Self, CodecError> {
        let mut enc =
            ::opus::Encoder::new(48_000, ::opus::Channels::Mono, ::opus::Application::Voip)
                .map_err(err)?;
        enc.set_inband_fec(true).map_err(err)?;
        Ok(OpusEncoder(enc))
    }

    pub(super) fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        out.resize(start + MAX_PAYLOAD, 0);
        let n = self.0.encode(pcm, &mut out[start..]).map_err(err)?;
        out.truncate(start + n);
        Ok(())
    }
}

pub(super) struct OpusDecoder(::opus::Decoder);

impl OpusDecoder {
    pub(super) fn new() -> Result<Self, CodecError> {
        ::opus::Decoder::new(48_000, ::opus::Channels::Mono)
            .map(OpusDecoder)
            .map_err(err)
    }

    pub(super) fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        // Up to 120 ms per packet at 48 kHz.
        let start = out.len();
        out.resize(start + 5760, 0);
        let n = self
            .0
            .decode(payload, &mut out[start..], false)
            .map_err(err)?;
        out.truncate(start + n);
        Ok(())
    }
}
