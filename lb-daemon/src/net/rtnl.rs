//! The rtnetlink connection every netlink user opens the same way, and the small helpers
//! for reading its replies.

use futures::TryStreamExt;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no tokio runtime")]
    NoRuntime,
    #[error("cannot open a netlink route socket: {0}")]
    Socket(#[source] std::io::Error),
}

/// Opens a netlink route socket (in the calling thread's network namespace) and spawns its
/// connection task on the current tokio runtime.
pub fn connect() -> Result<rtnetlink::Handle, ConnectError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConnectError::NoRuntime)?;
    let (connection, handle, _) = {
        // The socket registers with the runtime's reactor: enter it explicitly.
        let _guard = runtime.enter();
        rtnetlink::new_connection().map_err(ConnectError::Socket)?
    };
    runtime.spawn(connection);
    Ok(handle)
}

/// The first item of a netlink reply stream.
pub async fn first<T>(
    stream: impl futures::Stream<Item = Result<T, rtnetlink::Error>>,
) -> Result<Option<T>, rtnetlink::Error> {
    let mut stream = std::pin::pin!(stream);
    stream.try_next().await
}

/// The positive errno of a netlink error reply.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| c.get().abs()),
        _ => None,
    }
}
