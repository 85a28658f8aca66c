//! Stored records (MessagePack rows, see `tables`) and their JSON views in the seed's shapes.
//!
//! User ids: the seed numbers its users, chorus identities are token subjects. A subject that is a
//! decimal number is shown as a JSON number (`"creatorId": 1`), any other as a string.

use chorus_core::dialect::iso8601;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A user id as the seed shows it: a number when the subject is one, else the subject text.
pub fn user_id_value(sub: &str) -> Value {
    match sub.parse::<u64>() {
        Ok(n) if n.to_string() == sub => Value::from(n),
        _ => Value::from(sub),
    }
}

/// A product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRecord {
    /// UUIDv7.
    pub id: String,
    /// Name (≤ 255 characters).
    pub name: String,
    /// Description.
    pub description: String,
    /// Price, ≥ 0.
    pub price: f64,
    /// Image URL, if any.
    pub image_url: Option<String>,
    /// The subject of the user who created it (the seed's `sellerId`).
    pub seller_id: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Last change, ms since the epoch.
    pub updated_ms: u64,
}

impl ProductRecord {
    /// `{ id, name, description, price, imageUrl, sellerId, createdAt, updatedAt }`.
    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "price": self.price,
            "imageUrl": self.image_url,
            "sellerId": user_id_value(&self.seller_id),
            "createdAt": iso8601(self.created_ms),
            "updatedAt": iso8601(self.updated_ms),
        })
    }
}

/// A session's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, not started.
    Scheduled,
    /// Streaming: reactions and clicks are counted.
    Live,
    /// Started, paused.
    Paused,
    /// Over; no way back.
    Ended,
}

impl Status {
    /// The seed's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Live => "live",
            Self::Paused => "paused",
            Self::Ended => "ended",
        }
    }

    /// The status named `text`, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Scheduled, Self::Live, Self::Paused, Self::Ended].into_iter().find(|s| s.as_str() == text)
    }
}

/// A product linked to a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionProduct {
    /// The product.
    pub product_id: String,
    /// Position in the session's list (the index in `productIds` at creation).
    pub display_order: u32,
    /// Whether the creator marked it featured.
    pub featured: bool,
    /// When it was linked, ms since the epoch.
    pub added_ms: u64,
}

/// A streaming session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// UUIDv7; also the Agora channel name.
    pub id: String,
    /// Title (≤ 255 characters).
    pub title: String,
    /// Description, if any.
    pub description: Option<String>,
    /// Category, if any.
    pub category: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Stream URL, if any.
    pub stream_url: Option<String>,
    /// Stream key, if any (shown to its creator only).
    pub stream_key: Option<String>,
    /// Status.
    pub status: Status,
    /// The creator's subject.
    pub creator_id: String,
    /// The showcased product, if any.
    pub active_product_id: Option<String>,
    /// First time it went live, ms since the epoch.
    pub started_ms: Option<u64>,
    /// When it ended, ms since the epoch.
    pub ended_ms: Option<u64>,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Last change, ms since the epoch.
    pub updated_ms: u64,
    /// Linked products, in display order.
    pub products: Vec<SessionProduct>,
}

impl SessionRecord {
    /// Whether `product_id` is one of the session's products.
    pub fn has_product(&self, product_id: &str) -> bool {
        self.products.iter().any(|p| p.product_id == product_id)
    }

    /// The session's fields (without its products): `{ id, title, ..., activeProductId }`. The stream key
    /// only when `owner`.
    pub fn view(&self, owner: bool) -> Value {
        let mut view = json!({
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "category": self.category,
            "tags": self.tags,
            "streamUrl": self.stream_url,
            "status": self.status.as_str(),
            "creatorId": user_id_value(&self.creator_id),
            "agoraChannelName": self.id,
            "activeProductId": self.active_product_id,
            "startedAt": self.started_ms.map(iso8601),
            "endedAt": self.ended_ms.map(iso8601),
            "createdAt": iso8601(self.created_ms),
            "updatedAt": iso8601(self.updated_ms),
        });
        if owner {
            view["streamKey"] = json!(self.stream_key);
        }
        view
    }
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRecord {
    /// UUIDv7.
    pub id: String,
    /// The session.
    pub session_id: String,
    /// The trimmed text (1–500 characters).
    pub message: String,
    /// The sender's subject; `None` for a guest.
    pub user_id: Option<String>,
    /// The name shown.
    pub user_name: String,
    /// When it was sent, ms since the epoch.
    pub created_ms: u64,
}

impl ChatRecord {
    /// The `new-message` payload: `{ id, message, userId, userName, sessionId, createdAt }`.
    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "message": self.message,
            "userId": self.user_id.as_deref().map(user_id_value),
            "userName": self.user_name,
            "sessionId": self.session_id,
            "createdAt": iso8601(self.created_ms),
        })
    }
}

/// Whether a viewer is the session's creator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The creator watching their own session: never counted as a viewer.
    Publisher,
    /// Everyone else.
    Subscriber,
}

/// One viewing: a join, and its leave once it ended (the seed's `SessionView`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRecord {
    /// UUIDv7.
    pub id: String,
    /// The session.
    pub session_id: String,
    /// The viewer's subject; `None` for a guest.
    pub user_id: Option<String>,
    /// Publisher or subscriber.
    pub role: Role,
    /// The connection it came through (the seed's `socketId`).
    pub socket_id: String,
    /// When it began, ms since the epoch.
    pub joined_ms: u64,
    /// When it ended, ms since the epoch; `None` while it lasts.
    pub left_ms: Option<u64>,
    /// Whole seconds between join and leave, set at the leave.
    pub watch_secs: Option<u64>,
}

impl ViewRecord {
    /// Ends the viewing at `now_ms`.
    pub fn close(&mut self, now_ms: u64) {
        self.left_ms = Some(now_ms);
        self.watch_secs = Some(now_ms.saturating_sub(self.joined_ms) / 1000);
    }
}

/// Reaction totals of a session, by type.
pub type ReactionTotals = BTreeMap<String, u64>;

/// One product's click statistics, as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickStatsRecord {
    /// The product.
    pub product_id: String,
    /// Distinct clickers.
    pub unique_clicks: u64,
    /// All clicks.
    pub total_clicks: u64,
    /// `unique_clicks / total_viewers × 100`, one decimal.
    pub click_through_rate: f64,
    /// The viewer count the rate was computed with.
    pub total_viewers: u64,
    /// First persisted, ms since the epoch.
    pub created_ms: u64,
    /// Last persisted, ms since the epoch.
    pub updated_ms: u64,
}

/// Click-through rate in percent, rounded to one decimal (the seed's `15.5`); 0 without viewers.
pub fn click_through_rate(unique: u64, viewers: u64) -> f64 {
    if viewers == 0 {
        return 0.0;
    }
    (unique as f64 * 1000.0 / viewers as f64).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_numbers_when_they_can_be() {
        assert_eq!(user_id_value("1"), json!(1));
        assert_eq!(user_id_value("007"), json!("007"));
        assert_eq!(user_id_value("ann"), json!("ann"));
    }

    #[test]
    fn rates_round_to_one_decimal() {
        assert_eq!(click_through_rate(42, 271), 15.5);
        assert_eq!(click_through_rate(1, 3), 33.3);
        assert_eq!(click_through_rate(2, 3), 66.7);
        assert_eq!(click_through_rate(5, 0), 0.0);
        assert_eq!(Status::parse("paused"), Some(Status::Paused));
        assert_eq!(Status::parse("Paused"), None);
    }
}
