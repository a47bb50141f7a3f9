//! The local relay hook: with no relay configured, a client serves a relay on loopback so
//! two profiles on one machine can talk right after install. hush-core never links a relay
//! server; the binary that has one (the `hush` client) passes it in through [`LocalRelay`].

use std::future::Future;
use std::pin::Pin;

use hush_proto::RelayAddress;

use crate::error::Result;

/// A boxed future, as the hook's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A relay this device can serve itself.
pub trait LocalRelay: Send + Sync {
    /// Its address (a stable identity and port), created on first use.
    fn address(&self) -> Result<RelayAddress>;

    /// Starts serving it, unless another local process serves it already (`Ok(None)`).
    fn serve(&self) -> BoxFuture<'_, Result<Option<Box<dyn ServedRelay>>>>;
}

/// A local relay this process serves; dropping it stops it too, less gracefully.
pub trait ServedRelay: Send {
    /// Stops serving gracefully.
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;
}
