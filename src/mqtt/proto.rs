//! One face for both protocol versions rumqttc speaks: MQTT 5 (the default:
//! Maximum Packet Size in CONNECT, Response Topic and Correlation Data, session
//! expiry, PUBACK reason codes) and 3.1.1. The link, the ingest and the
//! publisher see only these types.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{Outgoing, QoS};

/// A command publish as it arrived.
#[derive(Debug, Clone)]
pub(super) struct Inbound {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// MQTT 5 Response Topic, as the sender gave it (checked by the ingest).
    pub response_topic: Option<String>,
    pub correlation: Option<Bytes>,
    /// The connection it arrived on ([`super::LinkState::generation`]): a
    /// packet id means nothing on another connection, so it is acked only on its own.
    pub generation: u64,
    ack: AckToken,
}

#[derive(Debug, Clone)]
enum AckToken {
    V4(rumqttc::Publish),
    V5(p5::Publish),
}

/// The client half (cloneable; requests go to the event loop).
#[derive(Clone)]
pub(super) enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// The event loop half, polled by the link only.
pub(super) enum Loop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// What a poll yields, whichever the version.
#[derive(Debug)]
pub(super) enum Polled {
    ConnAck {
        session_present: bool,
        /// The broker's Maximum Packet Size (MQTT 5), if it set one.
        max_packet: Option<u32>,
    },
    Publish(Box<Inbound>),
    /// A PUBACK; `refused` is the reason when the broker refused the message (MQTT 5).
    PubAck {
        pkid: u16,
        refused: Option<String>,
    },
    /// One of our publishes left with this packet id.
    Sent(u16),
    /// Our own DISCONNECT went out.
    OurDisconnect,
    Other,
}

/// Why the connection failed.
#[derive(Debug)]
pub(super) struct PollError {
    pub message: String,
    /// The broker sent a packet larger than we accept (3.1.1 cannot tell it
    /// our limit, so the same packet comes again on every reconnect).
    pub oversized: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("the MQTT client's queue is closed")]
pub(super) struct Closed;

impl Client {
    /// QoS 1 publish; `correlation` only travels with MQTT 5.
    pub async fn publish(
        &self,
        topic: String,
        retain: bool,
        payload: Vec<u8>,
        correlation: Option<Vec<u8>>,
    ) -> Result<(), Closed> {
        match self {
            Client::V4(c) => c
                .publish(topic, QoS::AtLeastOnce, retain, payload)
                .await
                .map_err(|_| Closed),
            Client::V5(c) => match correlation {
                None => c.publish(topic, QoS5::AtLeastOnce, retain, payload).await,
                Some(data) => {
                    let props = p5::PublishProperties {
                        correlation_data: Some(data.into()),
                        ..Default::default()
                    };
                    c.publish_with_properties(topic, QoS5::AtLeastOnce, retain, payload, props)
                        .await
                }
            }
            .map_err(|_| Closed),
        }
    }

    pub async fn ack(&self, p: &Inbound) -> Result<(), Closed> {
        match (self, &p.ack) {
            (Client::V4(c), AckToken::V4(p)) => c.ack(p).await.map_err(|_| Closed),
            (Client::V5(c), AckToken::V5(p)) => c.ack(p).await.map_err(|_| Closed),
            _ => unreachable!("a publish is acked on the client that received it"),
        }
    }

    /// The command filter, QoS 1, queued without waiting (from the event
    /// loop's own task, which must never block on its queue). With MQTT 5,
    /// retained commands are not sent at subscribe time and a live one keeps
    /// its retain flag (so it is refused).
    pub fn try_subscribe(&self, filter: String) -> Result<(), Closed> {
        match self {
            Client::V4(c) => c
                .try_subscribe(filter, QoS::AtLeastOnce)
                .map_err(|_| Closed),
            Client::V5(c) => {
                let f = p5::Filter {
                    path: filter,
                    qos: QoS5::AtLeastOnce,
                    nolocal: true,
                    preserve_retain: true,
                    retain_forward_rule: p5::RetainForwardRule::Never,
                };
                c.try_subscribe_many([f]).map_err(|_| Closed)
            }
        }
    }

    /// Home Assistant's filters, queued without waiting: `listen` at QoS 0
    /// with retained messages sent at subscribe time (its status, our own
    /// configs: nothing to ack), `commands` at QoS 1 as for the command
    /// filter (acked after commit by the ingest).
    pub fn try_subscribe_ha(
        &self,
        listen: &[String],
        commands: Option<String>,
    ) -> Result<(), Closed> {
        match self {
            Client::V4(c) => {
                let mut f: Vec<rumqttc::SubscribeFilter> = listen
                    .iter()
                    .map(|l| rumqttc::SubscribeFilter::new(l.clone(), QoS::AtMostOnce))
                    .collect();
                if let Some(cmd) = commands {
                    f.push(rumqttc::SubscribeFilter::new(cmd, QoS::AtLeastOnce));
                }
                c.try_subscribe_many(f).map_err(|_| Closed)
            }
            Client::V5(c) => {
                let mut f: Vec<p5::Filter> = listen
                    .iter()
                    .map(|l| p5::Filter {
                        path: l.clone(),
                        qos: QoS5::AtMostOnce,
                        nolocal: true,
                        preserve_retain: true,
                        retain_forward_rule: p5::RetainForwardRule::OnEverySubscribe,
                    })
                    .collect();
                if let Some(cmd) = commands {
                    f.push(p5::Filter {
                        path: cmd,
                        qos: QoS5::AtLeastOnce,
                        nolocal: true,
                        preserve_retain: true,
                        retain_forward_rule: p5::RetainForwardRule::Never,
                    });
                }
                c.try_subscribe_many(f).map_err(|_| Closed)
            }
        }
    }

    /// [`Client::try_subscribe`], waiting for room in the queue.
    pub async fn subscribe(&self, filter: String) -> Result<(), Closed> {
        match self {
            Client::V4(c) => c
                .subscribe(filter, QoS::AtLeastOnce)
                .await
                .map_err(|_| Closed),
            Client::V5(c) => {
                let f = p5::Filter {
                    path: filter,
                    qos: QoS5::AtLeastOnce,
                    nolocal: true,
                    preserve_retain: true,
                    retain_forward_rule: p5::RetainForwardRule::Never,
                };
                c.subscribe_many([f]).await.map_err(|_| Closed)
            }
        }
    }

    pub async fn disconnect(&self) -> Result<(), Closed> {
        match self {
            Client::V4(c) => c.disconnect().await.map_err(|_| Closed),
            Client::V5(c) => c.disconnect().await.map_err(|_| Closed),
        }
    }
}

impl Loop {
    pub async fn poll(&mut self) -> Result<Polled, PollError> {
        match self {
            Loop::V4(el) => match el.poll().await {
                Ok(ev) => Ok(from_v4(ev)),
                Err(e) => {
                    use rumqttc::{ConnectionError, StateError};
                    let oversized = matches!(
                        &e,
                        ConnectionError::MqttState(StateError::Deserialization(
                            rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(_)
                        ))
                    );
                    Err(PollError {
                        message: e.to_string(),
                        oversized,
                    })
                }
            },
            Loop::V5(el) => match el.poll().await {
                Ok(ev) => Ok(from_v5(ev)),
                Err(e) => {
                    use rumqttc::v5::{ConnectionError, StateError};
                    let oversized = matches!(
                        &e,
                        ConnectionError::MqttState(
                            StateError::IncomingPacketTooLarge { .. }
                                | StateError::Deserialization(
                                    rumqttc::v5::mqttbytes::Error::PayloadSizeLimitExceeded { .. }
                                )
                        )
                    );
                    Err(PollError {
                        message: e.to_string(),
                        oversized,
                    })
                }
            },
        }
    }

    /// Drop rumqttc's own queued and in-flight copies: the outbox is the one
    /// source of what must still go out.
    pub fn forget_pending(&mut self) {
        match self {
            Loop::V4(el) => {
                el.clean();
                el.pending.clear();
            }
            Loop::V5(el) => {
                el.clean();
                el.pending.clear();
            }
        }
    }
}

fn outgoing(o: Outgoing) -> Polled {
    match o {
        Outgoing::Publish(pkid) => Polled::Sent(pkid),
        Outgoing::Disconnect => Polled::OurDisconnect,
        _ => Polled::Other,
    }
}

fn from_v4(ev: rumqttc::Event) -> Polled {
    use rumqttc::{Event, Incoming};
    match ev {
        Event::Incoming(Incoming::ConnAck(a)) => Polled::ConnAck {
            session_present: a.session_present,
            max_packet: None,
        },
        Event::Incoming(Incoming::Publish(p)) => Polled::Publish(Box::new(Inbound {
            topic: p.topic.clone(),
            payload: p.payload.clone(),
            retain: p.retain,
            response_topic: None,
            correlation: None,
            generation: 0,
            ack: AckToken::V4(p),
        })),
        Event::Incoming(Incoming::PubAck(a)) => Polled::PubAck {
            pkid: a.pkid,
            refused: None,
        },
        Event::Outgoing(o) => outgoing(o),
        Event::Incoming(_) => Polled::Other,
    }
}

fn from_v5(ev: rumqttc::v5::Event) -> Polled {
    use rumqttc::v5::{Event, Incoming};
    match ev {
        Event::Incoming(Incoming::ConnAck(a)) => Polled::ConnAck {
            session_present: a.session_present,
            max_packet: a.properties.as_ref().and_then(|p| p.max_packet_size),
        },
        Event::Incoming(Incoming::Publish(p)) => {
            let props = p.properties.as_ref();
            Polled::Publish(Box::new(Inbound {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                payload: p.payload.clone(),
                retain: p.retain,
                response_topic: props.and_then(|p| p.response_topic.clone()),
                correlation: props.and_then(|p| p.correlation_data.clone()),
                generation: 0,
                ack: AckToken::V5(p),
            }))
        }
        Event::Incoming(Incoming::PubAck(a)) => Polled::PubAck {
            pkid: a.pkid,
            refused: match a.reason {
                p5::PubAckReason::Success | p5::PubAckReason::NoMatchingSubscribers => None,
                other => Some(format!("{other:?}")),
            },
        },
        Event::Outgoing(o) => outgoing(o),
        Event::Incoming(_) => Polled::Other,
    }
}
