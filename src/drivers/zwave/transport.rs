//! Where the controller's bytes travel: a local serial device (USB stick,
//! 115200 8N1) or a TCP socket (`tcp://host:port`: ser2net, remote sticks, the
//! zwave-js mock controller).

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte pipe to the controller.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// Why the controller's port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("empty port name")]
    Empty,
    #[error("bad tcp address {0:?}: expected tcp://host:port")]
    BadTcpAddress(String),
    #[error("cannot connect to {addr}: {source}")]
    Tcp {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open serial port {path}: {source}")]
    Serial {
        path: String,
        #[source]
        source: tokio_serial::Error,
    },
}

/// Which kind of port a name denotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    Tcp(String),
    Serial(String),
}

impl PortSpec {
    pub fn parse(port: &str) -> Result<Self, TransportError> {
        let port = port.trim();
        if port.is_empty() {
            return Err(TransportError::Empty);
        }
        if let Some(addr) = port.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/');
            match addr.rsplit_once(':') {
                Some((host, p)) if !host.is_empty() && p.parse::<u16>().is_ok() => {
                    Ok(PortSpec::Tcp(addr.to_owned()))
                }
                _ => Err(TransportError::BadTcpAddress(port.to_owned())),
            }
        } else {
            Ok(PortSpec::Serial(port.to_owned()))
        }
    }
}

/// Opens the port named by `port`.
pub async fn open(port: &str) -> Result<Box<dyn Transport>, TransportError> {
    match PortSpec::parse(port)? {
        PortSpec::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(&addr)
                .await
                .map_err(|source| TransportError::Tcp {
                    addr: addr.clone(),
                    source,
                })?;
            // Frames are tiny and latency-bound: never let Nagle hold an ACK back.
            let _ = s.set_nodelay(true);
            Ok(Box::new(s))
        }
        PortSpec::Serial(path) => {
            use tokio_serial::SerialPortBuilderExt;
            let s = tokio_serial::new(&path, 115_200)
                .data_bits(tokio_serial::DataBits::Eight)
                .parity(tokio_serial::Parity::None)
                .stop_bits(tokio_serial::StopBits::One)
                .flow_control(tokio_serial::FlowControl::None)
                .open_native_async()
                .map_err(|source| TransportError::Serial {
                    path: path.clone(),
                    source,
                })?;
            Ok(Box::new(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_names() {
        assert_eq!(
            PortSpec::parse("tcp://127.0.0.1:5555").unwrap(),
            PortSpec::Tcp("127.0.0.1:5555".into())
        );
        assert_eq!(
            PortSpec::parse("/dev/ttyACM0").unwrap(),
            PortSpec::Serial("/dev/ttyACM0".into())
        );
        assert!(matches!(
            PortSpec::parse("tcp://host"),
            Err(TransportError::BadTcpAddress(_))
        ));
        assert!(matches!(
            PortSpec::parse("tcp://:80"),
            Err(TransportError::BadTcpAddress(_))
        ));
        assert!(matches!(PortSpec::parse("  "), Err(TransportError::Empty)));
    }
}
