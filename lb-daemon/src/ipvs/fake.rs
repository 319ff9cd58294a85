//! An in-memory IPVS for the manager's tests: every request goes through the wire
//! format (emitted as bytes, parsed back) and is answered with the kernel's errnos;
//! dumps are built like the kernel's (flags with `IP_VS_SVC_F_HASHED`, statistics).

use netlink_packet_core::{Emitable, ParseableParametrized};
use netlink_packet_generic::GenlMessage;

use super::{
    codec::{CmdAttr, IpvsMessage, Stats, SvcAttr},
    model::{service_family, DestEntry, ServiceEntry},
    plan::KernelService,
    socket::{Transport, TransportError},
    uapi::{cmd, SVC_F_HASHED},
};

const FAMILY: u16 = 0x23;

pub struct FakeKernel {
    pub table: Vec<KernelService>,
    /// Scheduler modules present.
    pub schedulers: Vec<&'static str>,
    /// Every request answers EPERM.
    pub deny: bool,
    /// Commands received, in order.
    pub commands: Vec<u8>,
    /// TCP, TCP FIN and UDP timeouts set.
    pub timeouts: Option<(u32, u32, u32)>,
}

impl Default for FakeKernel {
    fn default() -> Self {
        Self {
            table: Vec::new(),
            schedulers: crate::config::LbAlgo::IPVS_SCHEDULERS.to_vec(),
            deny: false,
            commands: Vec::new(),
            timeouts: None,
        }
    }
}

/// Emits and re-parses, as a message crossing the socket would be.
pub fn wire(msg: IpvsMessage) -> IpvsMessage {
    let mut g = GenlMessage::from_payload(msg);
    g.set_resolved_family_id(FAMILY);
    let mut buf = vec![0u8; g.buffer_len()];
    g.emit(&mut buf);
    GenlMessage::<IpvsMessage>::parse_with_param(&buf[..], FAMILY)
        .expect("a message we emitted parses")
        .payload
}

fn err(errno: i32) -> TransportError {
    TransportError::Kernel(errno)
}

impl FakeKernel {
    fn find(&mut self, msg: &IpvsMessage) -> Result<usize, TransportError> {
        let id = service_of(msg)?.id;
        self.table
            .iter()
            .position(|(s, _)| s.id == id)
            .ok_or(err(libc::ESRCH))
    }

    fn handle(&mut self, msg: IpvsMessage) -> Result<(), TransportError> {
        match msg.cmd {
            cmd::NEW_SERVICE | cmd::SET_SERVICE => {
                let s = ServiceEntry::from_attrs(msg.service().ok_or(err(libc::EINVAL))?)
                    .map_err(|_| err(libc::EINVAL))?;
                if !self.schedulers.contains(&s.scheduler.as_str()) {
                    return Err(err(libc::ENOENT));
                }
                let existing = self.table.iter().position(|(e, _)| e.id == s.id);
                match (msg.cmd, existing) {
                    (cmd::NEW_SERVICE, Some(_)) => Err(err(libc::EEXIST)),
                    (cmd::NEW_SERVICE, None) => {
                        self.table.push((s, Vec::new()));
                        Ok(())
                    }
                    (_, Some(i)) => {
                        self.table[i].0 = s;
                        Ok(())
                    }
                    (_, None) => Err(err(libc::ESRCH)),
                }
            }
            cmd::DEL_SERVICE => {
                let i = self.find(&msg)?;
                self.table.remove(i);
                Ok(())
            }
            cmd::NEW_DEST | cmd::SET_DEST | cmd::DEL_DEST => {
                let i = self.find(&msg)?;
                let family = service_family(&self.table[i].0.id);
                let d = DestEntry::from_attrs(msg.dest().ok_or(err(libc::EINVAL))?, family)
                    .map_err(|_| err(libc::EINVAL))?;
                let dests = &mut self.table[i].1;
                let at = dests
                    .iter()
                    .position(|e| e.addr == d.addr && e.port == d.port);
                match (msg.cmd, at) {
                    (cmd::NEW_DEST, Some(_)) => Err(err(libc::EEXIST)),
                    (cmd::NEW_DEST, None) => {
                        dests.push(d);
                        Ok(())
                    }
                    (cmd::SET_DEST, Some(j)) => {
                        dests[j] = d;
                        Ok(())
                    }
                    (_, Some(j)) => {
                        dests.remove(j);
                        Ok(())
                    }
                    (_, None) => Err(err(libc::ENOENT)),
                }
            }
            cmd::SET_CONFIG => {
                let mut t = (0, 0, 0);
                for a in &msg.attrs {
                    match a {
                        CmdAttr::TimeoutTcp(v) => t.0 = *v,
                        CmdAttr::TimeoutTcpFin(v) => t.1 = *v,
                        CmdAttr::TimeoutUdp(v) => t.2 = *v,
                        _ => {}
                    }
                }
                self.timeouts = Some(t);
                Ok(())
            }
            _ => Err(err(libc::EINVAL)),
        }
    }
}

fn service_of(msg: &IpvsMessage) -> Result<ServiceEntry, TransportError> {
    // Destination commands name the service by key only: fill the rest for parsing.
    let mut attrs = msg.service().ok_or(err(libc::EINVAL))?.to_vec();
    if !attrs.iter().any(|a| matches!(a, SvcAttr::SchedName(_))) {
        attrs.push(SvcAttr::SchedName(String::new()));
    }
    ServiceEntry::from_attrs(&attrs).map_err(|_| err(libc::EINVAL))
}

impl Transport for FakeKernel {
    fn request(&mut self, msg: IpvsMessage) -> Result<(), TransportError> {
        let msg = wire(msg);
        self.commands.push(msg.cmd);
        if self.deny {
            return Err(err(libc::EPERM));
        }
        self.handle(msg)
    }

    fn dump(&mut self, msg: IpvsMessage) -> Result<Vec<IpvsMessage>, TransportError> {
        let msg = wire(msg);
        self.commands.push(msg.cmd);
        if self.deny {
            return Err(err(libc::EPERM));
        }
        let stats = Stats {
            conns: 1,
            inpkts: 10,
            outpkts: 9,
            inbytes: 1000,
            outbytes: 900,
        };
        let replies = match msg.cmd {
            cmd::GET_SERVICE => self
                .table
                .iter()
                .map(|(s, _)| {
                    let mut attrs: Vec<SvcAttr> = s
                        .to_attrs()
                        .into_iter()
                        .map(|a| match a {
                            SvcAttr::Flags { flags, mask } => SvcAttr::Flags {
                                flags: flags | SVC_F_HASHED,
                                mask,
                            },
                            other => other,
                        })
                        .collect();
                    attrs.push(SvcAttr::Stats64(stats));
                    IpvsMessage {
                        cmd: cmd::NEW_SERVICE,
                        attrs: vec![CmdAttr::Service(attrs)],
                    }
                })
                .collect(),
            cmd::GET_DEST => match self.find(&msg) {
                Ok(i) => self.table[i]
                    .1
                    .iter()
                    .map(|d| {
                        let mut attrs = d.to_attrs();
                        attrs.push(super::codec::DestAttr::Stats64(stats));
                        IpvsMessage {
                            cmd: cmd::NEW_DEST,
                            attrs: vec![CmdAttr::Dest(attrs)],
                        }
                    })
                    .collect(),
                // The kernel answers an empty dump for a service it does not have.
                Err(_) => Vec::new(),
            },
            _ => return Err(err(libc::EINVAL)),
        };
        Ok(replies.into_iter().map(wire).collect())
    }
}
