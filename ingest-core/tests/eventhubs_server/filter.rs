//! The start position a receiver asks for on attach, as the selector filter expression the
//! client sends: `amqp.annotation.x-opt-{offset|sequence-number|enqueued-time} {>|>=} '<value>'`
//! (the client writes no space before the quote), where offset `'@latest'` means events published
//! after the attach and offset `'-1'` the earliest (every offset is above it).

use super::{millis, Event};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Start {
    /// Only events published after the link attached.
    Latest,
    /// Events whose `field` is above `value` (or equal, when inclusive).
    From {
        field: Field,
        value: i64,
        inclusive: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    Offset,
    SequenceNumber,
    /// Milliseconds since the Unix epoch.
    EnqueuedTime,
}

const FIELDS: [(&str, Field); 3] = [
    ("offset", Field::Offset),
    ("sequence-number", Field::SequenceNumber),
    ("enqueued-time", Field::EnqueuedTime),
];

/// Parses a selector expression; the error says what is not understood.
pub(super) fn parse(expression: &str) -> Result<Start, String> {
    let unsupported = || format!("unsupported selector filter {expression:?}");
    let rest = expression
        .trim()
        .strip_prefix("amqp.annotation.x-opt-")
        .ok_or_else(unsupported)?;
    let (field, rest) = FIELDS
        .iter()
        .find_map(|(name, field)| Some((*field, rest.strip_prefix(name)?)))
        .ok_or_else(unsupported)?;
    let rest = rest.trim_start();
    let (inclusive, rest) = match rest.strip_prefix(">=") {
        Some(rest) => (true, rest),
        None => (false, rest.strip_prefix('>').ok_or_else(unsupported)?),
    };
    let value = rest
        .trim()
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .ok_or_else(unsupported)?;
    if field == Field::Offset && value == "@latest" {
        return Ok(Start::Latest);
    }
    let value = value.parse().map_err(|_| unsupported())?;
    Ok(Start::From {
        field,
        value,
        inclusive,
    })
}

impl Start {
    /// The index in `events` (the partition's log at attach time) of the first event to deliver;
    /// `events.len()` when it is yet to be published.
    pub(super) fn first_index(&self, events: &[Event]) -> usize {
        match *self {
            Start::Latest => events.len(),
            // Sequence numbers are indexes: one past the log waits for that event.
            Start::From {
                field: Field::SequenceNumber,
                value,
                inclusive,
            } => value.saturating_add(i64::from(!inclusive)).max(0) as usize,
            Start::From {
                field,
                value,
                inclusive,
            } => events
                .iter()
                .position(|event| {
                    let at = match field {
                        Field::Offset => event.offset as i64,
                        Field::EnqueuedTime => millis(event.enqueued_time),
                        Field::SequenceNumber => event.sequence_number,
                    };
                    at > value || (inclusive && at == value)
                })
                .unwrap_or(events.len()),
        }
    }
}
