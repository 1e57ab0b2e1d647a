//! A column's values finished into an Arrow array.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    ListArray, MapArray, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};

use super::Column;

impl Column {
    /// The values appended so far as an array; the column is empty after.
    pub(in crate::encode::parquet) fn finish(&mut self) -> Result<ArrayRef, String> {
        let e = |e: arrow_schema::ArrowError| e.to_string();
        Ok(match self {
            Column::Bool(values, nulls) => {
                Arc::new(BooleanArray::new(values.finish(), nulls.finish()))
            }
            Column::Int(values, nulls) => Arc::new(Int64Array::new(
                ScalarBuffer::from(std::mem::take(values)),
                nulls.finish(),
            )),
            Column::Float(values, nulls) => Arc::new(Float64Array::new(
                ScalarBuffer::from(std::mem::take(values)),
                nulls.finish(),
            )),
            Column::Str {
                offsets,
                data,
                nulls,
                base64,
            } => {
                let offsets =
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                let data = Buffer::from_vec(std::mem::take(data));
                if *base64 {
                    Arc::new(BinaryArray::try_new(offsets, data, nulls.finish()).map_err(e)?)
                } else {
                    Arc::new(StringArray::try_new(offsets, data, nulls.finish()).map_err(e)?)
                }
            }
            Column::Decimal {
                values,
                nulls,
                precision,
                scale,
            } => Arc::new(
                Decimal128Array::new(ScalarBuffer::from(std::mem::take(values)), nulls.finish())
                    .with_precision_and_scale(*precision, *scale)
                    .map_err(e)?,
            ),
            Column::Micros(values, nulls, utc) => Arc::new(
                TimestampMicrosecondArray::new(
                    ScalarBuffer::from(std::mem::take(values)),
                    nulls.finish(),
                )
                .with_timezone_opt(utc.then_some("UTC")),
            ),
            Column::Date(values, nulls) => Arc::new(Date32Array::new(
                ScalarBuffer::from(std::mem::take(values)),
                nulls.finish(),
            )),
            Column::Map {
                entries,
                offsets,
                keys,
                values,
                nulls,
            } => {
                let arrow_schema::DataType::Struct(fields) = entries.data_type() else {
                    return Err("a map's entries are not a struct (internal)".into());
                };
                let pairs = StructArray::try_new(
                    fields.clone(),
                    vec![keys.finish()?, values.finish()?],
                    None,
                )
                .map_err(e)?;
                Arc::new(
                    MapArray::try_new(
                        entries.clone(),
                        OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0]))),
                        pairs,
                        nulls.finish(),
                        false,
                    )
                    .map_err(e)?,
                )
            }
            Column::List {
                item,
                offsets,
                items,
                nulls,
            } => Arc::new(
                ListArray::try_new(
                    item.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0]))),
                    items.finish()?,
                    nulls.finish(),
                )
                .map_err(e)?,
            ),
            Column::Struct {
                fields,
                children,
                nulls,
            } => {
                let arrays = children
                    .iter_mut()
                    .map(Column::finish)
                    .collect::<Result<Vec<_>, _>>()?;
                Arc::new(StructArray::try_new(fields.clone(), arrays, nulls.finish()).map_err(e)?)
            }
        })
    }
}
