//! BFD control packet codec (RFC 5880 section 4.1), checks of RFC 5880 6.8.6.
//!
//! Only the UDP payload is handled here; addresses, ports and the TTL (GTSM) check belong
//! to the IO layer. keepalived 2.2.7 (`keepalived/bfd/bfd_scheduler.c`,
//! `bfd_check_packet`) applies the same checks and, like us, no authentication.

use super::fsm::{Diag, State};

/// The fixed control packet without an authentication section.
pub const CONTROL_LEN: usize = 24;
/// Shortest packet with the A bit set (RFC 5880 6.8.6: 26 bytes).
pub const AUTH_MIN_LEN: usize = 26;
/// RFC 5880 version 1.
pub const VERSION: u8 = 1;

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CPI: u8 = 0x08;
const FLAG_AUTH: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;

/// Why a received control packet is discarded. `label()` is the metric/log label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    #[error("shorter than a BFD control packet (24 bytes)")]
    TooShort,
    #[error("BFD version is not 1")]
    BadVersion,
    /// The Length field is below the minimum or above the received payload.
    #[error("length field does not match the packet")]
    BadLength,
    #[error("detect multiplier is zero")]
    ZeroMultiplier,
    #[error("multipoint bit set")]
    Multipoint,
    #[error("my discriminator is zero")]
    ZeroMyDiscriminator,
    /// Your Discriminator zero while the sender is neither Down nor AdminDown.
    #[error("your discriminator is zero in state Init or Up")]
    ZeroYourDiscriminator,
    /// The A bit: authentication is not configured (keepalived has none either).
    #[error("authentication present but not configured")]
    AuthNotConfigured,
    #[error("poll and final bits both set")]
    PollAndFinal,
    /// Checked by the IO layer: TTL / hop limit below 255 (RFC 5881 GTSM) or above max_hops.
    #[error("TTL/hop limit is not 255 (GTSM)")]
    BadTtl,
    /// Checked by the IO layer: no session for this source address / discriminator.
    #[error("no BFD session for this neighbor or discriminator")]
    NoSession,
    /// Checked by the IO layer: source port outside 49152-65535 (RFC 5881 section 4).
    #[error("source port outside 49152-65535")]
    BadSourcePort,
}

impl DropReason {
    pub const ALL: [DropReason; 12] = [
        DropReason::TooShort,
        DropReason::BadVersion,
        DropReason::BadLength,
        DropReason::ZeroMultiplier,
        DropReason::Multipoint,
        DropReason::ZeroMyDiscriminator,
        DropReason::ZeroYourDiscriminator,
        DropReason::AuthNotConfigured,
        DropReason::PollAndFinal,
        DropReason::BadTtl,
        DropReason::NoSession,
        DropReason::BadSourcePort,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::TooShort => "too_short",
            DropReason::BadVersion => "bad_version",
            DropReason::BadLength => "bad_length",
            DropReason::ZeroMultiplier => "zero_multiplier",
            DropReason::Multipoint => "multipoint",
            DropReason::ZeroMyDiscriminator => "zero_my_discriminator",
            DropReason::ZeroYourDiscriminator => "zero_your_discriminator",
            DropReason::AuthNotConfigured => "auth_not_configured",
            DropReason::PollAndFinal => "poll_and_final",
            DropReason::BadTtl => "bad_ttl",
            DropReason::NoSession => "no_session",
            DropReason::BadSourcePort => "bad_source_port",
        }
    }
}

/// One BFD control packet (intervals in microseconds, as on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    pub cpi: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discr: u32,
    pub your_discr: u32,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
}

impl Control {
    /// The 24-byte wire form (no authentication section).
    pub fn encode(&self) -> [u8; CONTROL_LEN] {
        let mut b = [0u8; CONTROL_LEN];
        b[0] = (VERSION << 5) | (self.diag.code() & 0x1f);
        let mut flags = self.state.code() << 6;
        if self.poll {
            flags |= FLAG_POLL;
        }
        if self.final_ {
            flags |= FLAG_FINAL;
        }
        if self.cpi {
            flags |= FLAG_CPI;
        }
        if self.demand {
            flags |= FLAG_DEMAND;
        }
        b[1] = flags;
        b[2] = self.detect_mult;
        b[3] = CONTROL_LEN as u8;
        b[4..8].copy_from_slice(&self.my_discr.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discr.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        b
    }

    /// Decodes and checks a received payload (RFC 5880 6.8.6, the checks that need no
    /// session). Trailing bytes beyond the Length field are ignored.
    pub fn decode(buf: &[u8]) -> Result<Control, DropReason> {
        let head: &[u8; CONTROL_LEN] = buf
            .get(..CONTROL_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(DropReason::TooShort)?;
        if head[0] >> 5 != VERSION {
            return Err(DropReason::BadVersion);
        }
        let flags = head[1];
        let auth = flags & FLAG_AUTH != 0;
        let length = usize::from(head[3]);
        let min = if auth { AUTH_MIN_LEN } else { CONTROL_LEN };
        if length < min || length > buf.len() {
            return Err(DropReason::BadLength);
        }
        if head[2] == 0 {
            return Err(DropReason::ZeroMultiplier);
        }
        if flags & FLAG_MULTIPOINT != 0 {
            return Err(DropReason::Multipoint);
        }
        let word = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let my_discr = word(4);
        let your_discr = word(8);
        if my_discr == 0 {
            return Err(DropReason::ZeroMyDiscriminator);
        }
        let state = State::from_code(flags >> 6);
        if your_discr == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(DropReason::ZeroYourDiscriminator);
        }
        if auth {
            return Err(DropReason::AuthNotConfigured);
        }
        let poll = flags & FLAG_POLL != 0;
        let final_ = flags & FLAG_FINAL != 0;
        if poll && final_ {
            return Err(DropReason::PollAndFinal);
        }
        Ok(Control {
            diag: Diag::from_code(head[0] & 0x1f),
            state,
            poll,
            final_,
            cpi: flags & FLAG_CPI != 0,
            demand: flags & FLAG_DEMAND != 0,
            detect_mult: head[2],
            my_discr,
            your_discr,
            desired_min_tx_us: word(12),
            required_min_rx_us: word(16),
            required_min_echo_rx_us: word(20),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Control {
        Control {
            diag: Diag::ControlDetectionExpired,
            state: State::Up,
            poll: true,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_discr: 0x1122_3344,
            your_discr: 0x5566_7788,
            desired_min_tx_us: 10_000,
            required_min_rx_us: 20_000,
            required_min_echo_rx_us: 0,
        }
    }

    #[test]
    fn round_trip_every_state_and_flag() {
        for state in [State::AdminDown, State::Down, State::Init, State::Up] {
            for (poll, final_) in [(false, false), (true, false), (false, true)] {
                let c = Control {
                    state,
                    poll,
                    final_,
                    cpi: poll,
                    ..sample()
                };
                assert_eq!(Control::decode(&c.encode()), Ok(c));
            }
        }
    }

    #[test]
    fn wire_layout_matches_rfc5880() {
        let b = sample().encode();
        assert_eq!(b[0], 0x21, "version 1, diag 1");
        assert_eq!(b[1], 0xe0, "state Up (3) << 6 | P");
        assert_eq!(b[2], 3);
        assert_eq!(b[3], 24);
        assert_eq!(&b[4..8], &[0x11, 0x22, 0x33, 0x44]);
        assert_eq!(&b[12..16], &10_000u32.to_be_bytes());
        assert_eq!(&b[16..20], &20_000u32.to_be_bytes());
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        let mut v = sample().encode().to_vec();
        v.extend_from_slice(&[9, 9]);
        assert_eq!(Control::decode(&v), Ok(sample()));
    }

    #[test]
    fn every_malformed_case_is_a_typed_drop() {
        let good = sample().encode();
        let with = |f: &dyn Fn(&mut [u8; CONTROL_LEN])| {
            let mut b = good;
            f(&mut b);
            b
        };
        let cases: Vec<(Vec<u8>, DropReason)> = vec![
            (good[..23].to_vec(), DropReason::TooShort),
            (Vec::new(), DropReason::TooShort),
            (with(&|b| b[0] = 0x41).to_vec(), DropReason::BadVersion),
            (with(&|b| b[0] = 0x01).to_vec(), DropReason::BadVersion),
            (with(&|b| b[3] = 23).to_vec(), DropReason::BadLength),
            (with(&|b| b[3] = 25).to_vec(), DropReason::BadLength),
            (
                with(&|b| {
                    b[1] |= FLAG_AUTH;
                    b[3] = 24;
                })
                .to_vec(),
                DropReason::BadLength,
            ),
            (with(&|b| b[2] = 0).to_vec(), DropReason::ZeroMultiplier),
            (
                with(&|b| b[1] |= FLAG_MULTIPOINT).to_vec(),
                DropReason::Multipoint,
            ),
            (
                with(&|b| b[4..8].copy_from_slice(&[0; 4])).to_vec(),
                DropReason::ZeroMyDiscriminator,
            ),
            (
                with(&|b| b[8..12].copy_from_slice(&[0; 4])).to_vec(),
                DropReason::ZeroYourDiscriminator,
            ),
            (
                with(&|b| {
                    b[1] = (State::Init.code() << 6) | (b[1] & 0x3f);
                    b[8..12].copy_from_slice(&[0; 4]);
                })
                .to_vec(),
                DropReason::ZeroYourDiscriminator,
            ),
            (
                {
                    let mut v = with(&|b| {
                        b[1] |= FLAG_AUTH;
                        b[3] = 26;
                    })
                    .to_vec();
                    v.extend_from_slice(&[1, 2]);
                    v
                },
                DropReason::AuthNotConfigured,
            ),
            (
                with(&|b| b[1] |= FLAG_POLL | FLAG_FINAL).to_vec(),
                DropReason::PollAndFinal,
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(Control::decode(&bytes), Err(want), "{bytes:02x?}");
        }
    }

    #[test]
    fn zero_your_discriminator_is_fine_while_down() {
        for state in [State::Down, State::AdminDown] {
            let c = Control {
                state,
                poll: false,
                your_discr: 0,
                ..sample()
            };
            assert_eq!(Control::decode(&c.encode()), Ok(c));
        }
    }

    #[test]
    fn labels_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(r
                .label()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!(seen.insert(r.label()));
        }
    }
}
