//! The targets: chorus over three transports/codecs and the three peers, each with the server it
//! runs against and the dialect the generator speaks to it.

use crate::conn::{Proto, SocketIoEvents};
use crate::servers::ServerKind;
use chorus_protocol::Codec;
use clap::ValueEnum;

/// A target of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// chorus, WebSocket, MessagePack frames.
    ChorusMsgpack,
    /// chorus, WebSocket, JSON frames.
    ChorusJson,
    /// chorus, QUIC (MessagePack).
    ChorusQuic,
    /// chorus' Socket.IO gateway, WebSocket transport (the Socket.IO peer's workload, chorus events).
    ChorusSocketio,
    /// nats-server over WebSocket, NATS text protocol.
    Nats,
    /// Socket.IO 4 on Node, rooms and broadcast.
    Socketio,
    /// The raw limit: pre-framed WebSocket writes, no broker logic, each event copied into every
    /// subscriber's buffer.
    Raw,
    /// The raw ceiling: one pre-framed WebSocket frame shared by every subscriber, vectored writes.
    RawWritev,
}

impl Target {
    /// Every target, in report order.
    pub const ALL: [Target; 8] = [
        Target::ChorusMsgpack,
        Target::ChorusJson,
        Target::ChorusQuic,
        Target::ChorusSocketio,
        Target::Nats,
        Target::Socketio,
        Target::Raw,
        Target::RawWritev,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChorusMsgpack => "chorus-msgpack",
            Self::ChorusJson => "chorus-json",
            Self::ChorusQuic => "chorus-quic",
            Self::ChorusSocketio => "chorus-socketio",
            Self::Nats => "nats",
            Self::Socketio => "socketio",
            Self::Raw => "raw",
            Self::RawWritev => "raw-writev",
        }
    }

    /// The dialect the generator speaks.
    pub fn proto(self) -> Proto {
        match self {
            Self::ChorusMsgpack | Self::Raw | Self::RawWritev => Proto::ChorusWs(Codec::MsgPack),
            Self::ChorusJson => Proto::ChorusWs(Codec::Json),
            Self::ChorusQuic => Proto::ChorusQuic,
            Self::Nats => Proto::Nats,
            Self::ChorusSocketio => Proto::SocketIo(SocketIoEvents::Chorus),
            Self::Socketio => Proto::SocketIo(SocketIoEvents::Peer),
        }
    }

    /// The server it runs against.
    pub fn server(self) -> ServerKind {
        match self {
            Self::ChorusMsgpack | Self::ChorusJson | Self::ChorusQuic | Self::ChorusSocketio => ServerKind::Chorus,
            Self::Nats => ServerKind::Nats,
            Self::Socketio => ServerKind::SocketIo,
            Self::Raw => ServerKind::Raw,
            Self::RawWritev => ServerKind::RawWritev,
        }
    }

    /// Whether it speaks the live-commerce events (`reactions`): chorus MessagePack (WebSocket, QUIC)
    /// and Socket.IO (chorus's gateway, the Node peer).
    pub fn speaks_commerce(self) -> bool {
        matches!(self, Self::ChorusMsgpack | Self::ChorusQuic | Self::ChorusSocketio | Self::Socketio)
    }

    /// Whether it is a chorus target.
    pub fn is_chorus(self) -> bool {
        self.server() == ServerKind::Chorus
    }
}
