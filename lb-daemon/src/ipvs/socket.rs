//! Talking to the kernel: a generic netlink socket, the IPVS family's id resolved through
//! the controller (`nlctrl`), requests acknowledged and dumps collected. [`Transport`] is
//! the seam the manager is tested through (an in-memory kernel stands in for this).

use std::io;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::{
    ctrl::{nlas::GenlCtrlAttrs, GenlCtrl, GenlCtrlCmd},
    GenlFamily, GenlMessage,
};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use super::codec::IpvsMessage;

/// What went wrong below the IPVS semantics.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The kernel refused the request with this errno.
    #[error("{}", io::Error::from_raw_os_error(*.0))]
    Kernel(i32),
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    #[error("malformed netlink reply: {0}")]
    Decode(String),
}

impl TransportError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel(e) => Some(*e),
            _ => None,
        }
    }
}

/// Sends IPVS requests and reads dumps.
pub trait Transport {
    /// A command, acknowledged by the kernel.
    fn request(&mut self, msg: IpvsMessage) -> Result<(), TransportError>;
    /// A dump request; every reply message.
    fn dump(&mut self, msg: IpvsMessage) -> Result<Vec<IpvsMessage>, TransportError>;
}

/// The kernel's IPVS family over a generic netlink socket.
pub struct GenlSocket {
    socket: Socket,
    family: u16,
    seq: u32,
}

impl GenlSocket {
    /// Opens the socket and resolves the family. `Err(Kernel(ENOENT))`: no IPVS family
    /// (the `ip_vs` module is not loaded, or the kernel lacks it).
    pub fn open() -> Result<Self, TransportError> {
        let mut socket = Socket::new(NETLINK_GENERIC)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        let mut s = GenlSocket {
            socket,
            family: 0,
            seq: 0,
        };
        s.family = s.resolve_family(IpvsMessage::family_name())?;
        Ok(s)
    }

    pub fn family_id(&self) -> u16 {
        self.family
    }

    fn resolve_family(&mut self, name: &str) -> Result<u16, TransportError> {
        let msg = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(name.to_string())],
        });
        let replies = self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK)?;
        replies
            .iter()
            .flat_map(|r| r.payload.nlas.iter())
            .find_map(|a| match a {
                GenlCtrlAttrs::FamilyId(id) => Some(*id),
                _ => None,
            })
            .ok_or_else(|| TransportError::Decode(format!("no family id for {name}")))
    }

    fn ipvs(&self, msg: IpvsMessage) -> GenlMessage<IpvsMessage> {
        let mut m = GenlMessage::from_payload(msg);
        m.set_resolved_family_id(self.family);
        m
    }

    /// Sends `payload` and reads replies until the ACK (or DONE for a dump).
    fn exchange<M>(&mut self, payload: M, flags: u16) -> Result<Vec<M>, TransportError>
    where
        M: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            for frame in frames(&data)? {
                let m = NetlinkMessage::<M>::deserialize(frame)
                    .map_err(|e| TransportError::Decode(e.to_string()))?;
                if m.header.sequence_number != seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    NetlinkPayload::Error(e) => match e.code {
                        Some(code) => return Err(TransportError::Kernel(-code.get())),
                        None => return Ok(out),
                    },
                    NetlinkPayload::Done(d) => {
                        if d.code < 0 {
                            return Err(TransportError::Kernel(-d.code));
                        }
                        return Ok(out);
                    }
                    _ => {}
                }
            }
            if !dump && !out.is_empty() && flags & NLM_F_ACK == 0 {
                return Ok(out);
            }
        }
    }
}

/// The netlink messages in one datagram.
pub(crate) fn frames(data: &[u8]) -> Result<Vec<&[u8]>, TransportError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < data.len() {
        let buf = NetlinkBuffer::new_checked(&data[off..])
            .map_err(|e| TransportError::Decode(e.to_string()))?;
        let len = buf.length() as usize;
        if len == 0 {
            break;
        }
        out.push(&data[off..off + len]);
        off += (len + 3) & !3;
    }
    Ok(out)
}

impl Transport for GenlSocket {
    fn request(&mut self, msg: IpvsMessage) -> Result<(), TransportError> {
        let m = self.ipvs(msg);
        self.exchange(m, NLM_F_REQUEST | NLM_F_ACK).map(|_| ())
    }

    fn dump(&mut self, msg: IpvsMessage) -> Result<Vec<IpvsMessage>, TransportError> {
        let m = self.ipvs(msg);
        Ok(self
            .exchange(m, NLM_F_REQUEST | NLM_F_DUMP)?
            .into_iter()
            .map(|g| g.payload)
            .collect())
    }
}
