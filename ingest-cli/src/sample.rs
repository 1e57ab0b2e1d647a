//! Sample records for the demo and the benchmark: realistic order events, 0.5–1 KB, nested
//! objects, unicode, every 10th pretty-printed. Pure and deterministic in the record number, so
//! every run lands the same bytes.

use serde_json::{json, Value};

const CITIES: &[&str] = &[
    "Zürich",
    "São Paulo",
    "東京",
    "Kraków",
    "Reykjavík",
    "Montréal",
    "Αθήνα",
    "Cape Town",
    "Москва",
    "القاهرة",
];
const PRODUCTS: &[(&str, u32)] = &[
    ("espresso beans ☕", 1450),
    ("café crème", 390),
    ("matcha 抹茶", 2200),
    ("croissant 🥐", 250),
    ("kombucha", 480),
    ("pain au chocolat", 310),
];

/// A cheap deterministic mix of `n`, so fields vary without a random-number dependency.
pub fn mix(n: u64) -> u64 {
    let mut x = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Order event number `n` as JSON bytes (compact, or pretty-printed for every 10th).
pub fn order_event(n: u64) -> Vec<u8> {
    let h = mix(n);
    let items: Vec<Value> = (0..1 + h % 4)
        .map(|i| {
            let (name, cents) = PRODUCTS[((h >> 8) as usize + i as usize) % PRODUCTS.len()];
            json!({
                "sku": format!("SKU-{:05}", (h >> 16).wrapping_add(i) % 100_000),
                "name": name,
                "qty": 1 + (h >> (20 + i)) % 3,
                "unit_price": {"amount": cents, "currency": "EUR"},
            })
        })
        .collect();
    let city = CITIES[(h >> 24) as usize % CITIES.len()];
    let event = json!({
        "event_id": format!("{h:016x}"),
        "type": if h.is_multiple_of(17) { "order_cancelled" } else { "order_placed" },
        "order_id": n,
        "placed_at": format!("2026-11-{:02}T{:02}:{:02}:{:02}Z", 1 + (h >> 32) % 28, (h >> 40) % 24, (h >> 44) % 60, (h >> 50) % 60),
        "customer": {
            "id": format!("cust-{}", (h >> 12) % 99_991),
            "city": city,
            "tier": (["free", "plus", "pro"][(h >> 5) as usize % 3]),
            "consents": {"email": h & 1 == 0, "sms": h & 2 == 0},
        },
        "items": items,
        "shipping": {
            "method": (["standard", "express", "pickup"][(h >> 7) as usize % 3]),
            "address": {
                "street": format!("{} Rue de l'Église", (h >> 36) % 300),
                "postcode": format!("{:05}", (h >> 28) % 99_999),
                "city": city,
            },
        },
        "notes": if h.is_multiple_of(11) { json!("Bitte klingeln — 2. Stock, \"Hinterhaus\"") } else { Value::Null },
    });
    if n.is_multiple_of(10) {
        serde_json::to_vec_pretty(&event).expect("serialisable")
    } else {
        serde_json::to_vec(&event).expect("serialisable")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_are_valid_json_of_the_promised_size() {
        let sizes: Vec<usize> = (0..1000).map(|n| super::order_event(n).len()).collect();
        for n in 0..1000 {
            serde_json::from_slice::<serde_json::Value>(&super::order_event(n)).unwrap();
        }
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!((450..=1024).contains(&mean), "mean {mean}");
    }
}
