//! What the benchmark produces: the sample order events (0.5–1 KB, nested) or clickstream-like
//! page views (150–200 bytes, flat), the two record sizes the overhead factor is reported for;
//! and votes that each carry a field name never seen before (ids used as keys), which a
//! Parquet schema must not follow without end.

use ingest_cli::sample::mix;
use serde_json::json;

/// Also the value of `--only` and `encode --kind` (`orders`, `clicks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Records {
    Orders,
    Clicks,
    Flood,
    /// The clicks as Avro in Confluent's wire format (schema id 1).
    Avro,
}

const PAGES: [&str; 8] = [
    "/",
    "/search",
    "/products/shoes",
    "/products/bags",
    "/cart",
    "/checkout",
    "/account",
    "/help/returns",
];
const AGENTS: [&str; 4] = [
    "ios/17.4",
    "android/14",
    "web/chrome-126",
    "web/firefox-128",
];

/// A page view of 150–200 bytes.
pub fn click_event(n: u64) -> Vec<u8> {
    let h = mix(n);
    let event = json!({
        "event": "page_view",
        "ts": 1_764_547_200_000u64 + n * 7 + h % 1000,
        "user": format!("u{:06}", h % 1_000_000),
        "session": format!("{:016x}{:016x}", h, mix(h)),
        "page": PAGES[(h >> 8) as usize % PAGES.len()],
        "ref": if h.is_multiple_of(3) { "google" } else { "direct" },
        "agent": AGENTS[(h >> 12) as usize % AGENTS.len()],
        "ms": (h >> 20) % 5000,
    });
    serde_json::to_vec(&event).expect("serialisable")
}

/// A vote of about 120 bytes whose item id is a field name: new in every record.
pub fn flood_event(n: u64) -> Vec<u8> {
    let h = mix(n);
    let mut event = serde_json::Map::new();
    event.insert("event".into(), json!("vote"));
    event.insert("ts".into(), json!(1_764_547_200_000u64 + n * 7));
    event.insert("user".into(), json!(format!("u{:06}", h % 1_000_000)));
    event.insert(format!("item_{n:010}_{:08x}", h as u32), json!(h % 5 + 1));
    serde_json::to_vec(&event).expect("serialisable")
}

impl Records {
    pub fn event(self, n: u64) -> Vec<u8> {
        match self {
            Records::Orders => ingest_cli::sample::order_event(n),
            Records::Clicks => click_event(n),
            Records::Flood => flood_event(n),
            Records::Avro => crate::avro::click(n),
        }
    }

    /// Mean record size over the first thousand.
    pub fn mean_bytes(self) -> f64 {
        (0..1000).map(|n| self.event(n).len()).sum::<usize>() as f64 / 1000.0
    }

    pub fn name(self) -> &'static str {
        match self {
            Records::Orders => "orders 0.5-1 KB",
            Records::Clicks => "clicks 150-200 B",
            Records::Flood => "new field names",
            Records::Avro => "clicks as Avro",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clicks_are_150_to_200_bytes_and_orders_half_to_one_kilobyte() {
        for n in 0..10_000 {
            let len = click_event(n).len();
            assert!(
                (150..=200).contains(&len),
                "{len}: {}",
                String::from_utf8_lossy(&click_event(n))
            );
        }
        let mean = Records::Orders.mean_bytes();
        assert!((500.0..=1000.0).contains(&mean), "{mean}");
        assert_ne!(click_event(1), click_event(2));
    }
}
