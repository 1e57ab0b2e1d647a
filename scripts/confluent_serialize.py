"""Writes records as Confluent's own serializers do (confluent-kafka's AvroSerializer or
JSONSerializer, registering their schemas in the registry at argv[1]), for the schema-registry
tests.

Usage: confluent_serialize.py <registry url> <topic> <records per version> [avro|json]
Prints one JSON line per record: {"hex": the serialized value, "expected": the JSON ingest's
documented table makes of it (book: "Schema-registry topics")}, written here independently of
ingest's decoder. Records alternate between two versions of the schema: the second adds fields
(one a record from another subject, by reference), widens an int to a long, and adds a
timestamp in microseconds.
"""
import base64
import datetime
import decimal
import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

url, topic, per_version = sys.argv[1], sys.argv[2], int(sys.argv[3])
kind = sys.argv[4] if len(sys.argv) > 4 else "avro"
client = SchemaRegistryClient({"url": url})
ctx = SerializationContext(topic, MessageField.VALUE)

if kind == "json":
    SCHEMA = {"type": "object", "title": "Click", "properties": {
        "id": {"type": "integer"}, "page": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
        "meta": {"type": ["object", "null"]}}, "required": ["id", "page"]}
    serialize = JSONSerializer(json.dumps(SCHEMA), client, conf={"auto.register.schemas": True})
    for n in range(2 * per_version):
        record = {"id": n, "page": "/p/%d?q=\"ü\"" % n, "tags": ["a"] * (n % 3), "meta": {"deep": {"n": n}} if n % 2 else None}
        print(json.dumps({"hex": serialize(record, ctx).hex(), "expected": record}))
    sys.exit(0)

ADDRESS = {
    "type": "record", "name": "Address", "namespace": "geo",
    "fields": [{"name": "city", "type": "string"}, {"name": "zip", "type": ["null", "string"], "default": None}],
}
client.register_schema("geo-address", Schema(json.dumps(ADDRESS), "AVRO"))

BASE = [
    {"name": "id", "type": "long"},
    {"name": "customer", "type": "string"},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
    {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED"]}},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attrs", "type": {"type": "map", "values": "int"}},
    {"name": "note", "type": ["null", "string"], "default": None},
    {"name": "blob", "type": "bytes"},
    {"name": "ratio", "type": "double"},
]
V1 = {"type": "record", "name": "Order", "namespace": "shop",
      "fields": BASE + [{"name": "qty", "type": "int"}]}
V2 = {"type": "record", "name": "Order", "namespace": "shop",
      "fields": BASE + [
          {"name": "qty", "type": "long"},
          {"name": "coupon", "type": ["null", "string"], "default": None},
          {"name": "ship_to", "type": ["null", "geo.Address"], "default": None},
          {"name": "packed_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
      ]}

conf = {"auto.register.schemas": True}
v1 = AvroSerializer(client, json.dumps(V1), conf=conf)
v2 = AvroSerializer(client, Schema(json.dumps(V2), "AVRO", [SchemaReference("geo.Address", "geo-address", 1)]), conf=conf)
UTC = datetime.timezone.utc


def millis(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


for n in range(2 * per_version):
    second = n % 2 == 1
    placed = datetime.datetime(2026, 12, 7, 5, 0, 0, tzinfo=UTC) + datetime.timedelta(milliseconds=1234 * n)
    amount = (decimal.Decimal(n * 137 - 5000) / 100).quantize(decimal.Decimal("0.01"))
    record = {
        "id": n, "customer": "cust-%d \"quoted\" ü" % n, "amount": amount, "placed_at": placed,
        "day": datetime.date(2026, 1, 1) + datetime.timedelta(days=n), "status": ["NEW", "PAID", "SHIPPED"][n % 3],
        "tags": ["t%d" % i for i in range(n % 4)], "attrs": {"a": n, "b": -n},
        "note": None if n % 5 == 0 else "note %d" % n, "blob": bytes([n % 256, 0, 255]),
        "ratio": n / 4, "qty": n * 1000,
    }
    expected = dict(record)
    expected.update({
        "amount": format(amount, "f"), "placed_at": millis(placed), "day": record["day"].isoformat(),
        "blob": base64.b64encode(record["blob"]).decode(),
    })
    if second:
        record["qty"] = expected["qty"] = 2**40 + n  # past an int: the widened long
        packed = placed + datetime.timedelta(microseconds=7)
        record.update({"coupon": "C%d" % n if n % 3 else None, "packed_at": packed,
                       "ship_to": {"city": "Oslo", "zip": None} if n % 3 else None})
        expected.update({"coupon": record["coupon"], "ship_to": record["ship_to"],
                         "packed_at": packed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    value = (v2 if second else v1)(record, ctx)
    print(json.dumps({"hex": value.hex(), "expected": expected}))
