//! `lb-daemon genhash URL`: the digest HTTP_GET / SSL_GET `digest` expects, like
//! keepalived's genhash.

use std::time::Duration;

use anyhow::Result;

use crate::health::checkers;

pub fn run(url: &str, virtualhost: Option<&str>, verify: bool, timeout: Duration) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, digest) = rt.block_on(checkers::genhash(url, virtualhost, verify, timeout))?;
    println!("MD5SUM = {digest}");
    println!("HTTP status: {status}");
    Ok(())
}
