"""Writes records as Confluent's own serializers do (confluent-kafka's AvroSerializer or
JSONSerializer, registering their schemas in the registry at argv[1]), for the schema-registry
tests.

Usage: confluent_serialize.py <registry url> <topic> <records per version> [avro|json|protobuf]
Prints one JSON line per record: {"hex": the serialized value, "expected": the JSON ingest's
documented table makes of it (book: "Schema-registry topics")}, written here independently of
ingest's decoder; Avro records also carry a key written by the key serializer (subject
<topic>-key): "key_hex" and "key_expected". Records alternate between two versions of each
format's schema. Avro's second adds fields (one a record from another subject, by reference),
removes one (ratio), widens an int to a long, and adds a timestamp in microseconds; Protobuf's
second removes ratio, widens a map's values from int32 to int64, and adds a string and a nested
message; JSON Schema's second removes tags and adds a number and a nested object.
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

if kind == "protobuf":
    # Message classes built from a descriptor at run time (no protoc here); what a record must
    # land as is protobuf's own JSON mapping of it (json_format), keeping the .proto field names.
    from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
    from google.protobuf import timestamp_pb2  # noqa: F401 (registers the import below)
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer

    F = descriptor_pb2.FieldDescriptorProto

    def field(msg, name, number, kind, label=F.LABEL_OPTIONAL, type_name=None, optional=False):
        f = msg.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            f.type_name = type_name
        if optional:
            f.proto3_optional = True
            f.oneof_index = len(msg.oneof_decl)
            msg.oneof_decl.add(name="_" + name)

    def classes(second):
        """Order and Refund of the file's first or second version: the second removes ratio,
        widens the attrs map's values to int64, and adds coupon and a nested ship_to. Each
        version in a pool of its own (one pool cannot hold two files of one name)."""
        file = descriptor_pb2.FileDescriptorProto(
            name="shop/order.proto", package="shop", syntax="proto3",
            dependency=["google/protobuf/timestamp.proto"])
        status = file.enum_type.add(name="Status")
        for i, v in enumerate(["NEW", "PAID", "SHIPPED"]):
            status.value.add(name=v, number=i)
        order = file.message_type.add(name="Order")
        line = order.nested_type.add(name="Line")
        field(line, "sku", 1, F.TYPE_STRING)
        field(line, "qty", 2, F.TYPE_INT64)
        entry = order.nested_type.add(name="AttrsEntry")
        entry.options.map_entry = True
        field(entry, "key", 1, F.TYPE_STRING)
        field(entry, "value", 2, F.TYPE_INT64 if second else F.TYPE_INT32)
        field(order, "id", 1, F.TYPE_INT64)
        field(order, "customer", 2, F.TYPE_STRING)
        field(order, "lines", 3, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".shop.Order.Line")
        field(order, "status", 4, F.TYPE_ENUM, type_name=".shop.Status")
        field(order, "attrs", 5, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".shop.Order.AttrsEntry")
        field(order, "blob", 6, F.TYPE_BYTES)
        if second:
            order.reserved_range.add(start=7, end=8)
        else:
            field(order, "ratio", 7, F.TYPE_DOUBLE)
        field(order, "placed_at", 8, F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp")
        field(order, "note", 9, F.TYPE_STRING, optional=True)
        field(order, "big", 10, F.TYPE_UINT64)
        if second:
            address = order.nested_type.add(name="Address")
            field(address, "city", 1, F.TYPE_STRING)
            field(address, "zip", 2, F.TYPE_STRING)
            field(order, "coupon", 11, F.TYPE_STRING, optional=True)
            field(order, "ship_to", 12, F.TYPE_MESSAGE, type_name=".shop.Order.Address")
        refund = file.message_type.add(name="Refund")
        field(refund, "order_id", 1, F.TYPE_INT64)
        field(refund, "reason", 2, F.TYPE_STRING)
        pool = descriptor_pool.DescriptorPool()
        pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
        pool.Add(file)
        return [message_factory.GetMessageClass(pool.FindMessageTypeByName(n))
                for n in ("shop.Order", "shop.Refund")]

    conf = {"auto.register.schemas": True, "use.deprecated.format": False}
    made = {}
    for second in (False, True):
        Order, Refund = classes(second)
        made[second] = (Order, Refund, ProtobufSerializer(Order, client, conf),
                        ProtobufSerializer(Refund, client, conf))
    for n in range(2 * per_version):
        # Odd records are the second version's (every refund among them).
        second = n % 2 == 1
        Order, Refund, orders, refunds = made[second]
        if n % 4 == 3:
            msg, serialize = Refund(order_id=n, reason="damaged \"box\" ü" if n % 8 == 3 else ""), refunds
        else:
            msg = Order(id=n, customer="cust-%d" % n, status=n % 3, blob=bytes([n % 256, 0, 255]),
                        big=2**63 + n)
            for i in range(n % 3):
                msg.lines.add(sku="sku-%d" % i, qty=i * 2**40)
            msg.attrs["a"] = 2**40 + n if second else n
            msg.placed_at.FromMilliseconds(1_796_000_000_000 + 1234 * n)
            if second:
                msg.coupon = "C%d" % n
                if n % 3:
                    msg.ship_to.city, msg.ship_to.zip = "Oslo", "0150"
            else:
                msg.ratio = n / 4
                if n % 4 == 2:
                    msg.note = "note %d" % n
            serialize = orders
        expected = json_format.MessageToDict(
            msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        print(json.dumps({"hex": serialize(msg, ctx).hex(), "expected": expected}))
    sys.exit(0)

if kind == "json":
    # Two versions: the second drops tags and adds a number and a nested object.
    V1 = {"type": "object", "title": "Click", "properties": {
        "id": {"type": "integer"}, "page": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
        "meta": {"type": ["object", "null"]}}, "required": ["id", "page"]}
    V2 = {"type": "object", "title": "Click", "properties": {
        "id": {"type": "integer"}, "page": {"type": "string"}, "meta": {"type": ["object", "null"]},
        "amount": {"type": "number"},
        "referrer": {"type": "object", "properties": {"source": {"type": "string"}, "campaign": {"type": "integer"}}}},
        "required": ["id", "page", "amount"]}
    conf = {"auto.register.schemas": True}
    v1, v2 = (JSONSerializer(json.dumps(s), client, conf=conf) for s in (V1, V2))
    for n in range(2 * per_version):
        record = {"id": n, "page": "/p/%d?q=\"ü\"" % n, "meta": {"deep": {"n": n}} if n % 4 == 1 else None}
        if n % 2:
            record.update({"amount": n / 8, "referrer": {"source": "mail", "campaign": n}})
        else:
            record["tags"] = ["a"] * (n % 3)
        print(json.dumps({"hex": (v2 if n % 2 else v1)(record, ctx).hex(), "expected": record}))
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
      "fields": [f for f in BASE if f["name"] != "ratio"] + [
          {"name": "qty", "type": "long"},
          {"name": "coupon", "type": ["null", "string"], "default": None},
          {"name": "ship_to", "type": ["null", "geo.Address"], "default": None},
          {"name": "packed_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
      ]}

KEY = {"type": "record", "name": "OrderKey", "namespace": "shop",
       "fields": [{"name": "id", "type": "long"}, {"name": "region", "type": {"type": "enum", "name": "Region", "symbols": ["EU", "US"]}}]}
conf = {"auto.register.schemas": True}
key_serializer = AvroSerializer(client, json.dumps(KEY), conf=conf)
key_ctx = SerializationContext(topic, MessageField.KEY)
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
        del record["ratio"], expected["ratio"]  # removed in the second version
        record["qty"] = expected["qty"] = 2**40 + n  # past an int: the widened long
        packed = placed + datetime.timedelta(microseconds=7)
        record.update({"coupon": "C%d" % n if n % 3 else None, "packed_at": packed,
                       "ship_to": {"city": "Oslo", "zip": None} if n % 3 else None})
        expected.update({"coupon": record["coupon"], "ship_to": record["ship_to"],
                         "packed_at": packed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    value = (v2 if second else v1)(record, ctx)
    key = {"id": n, "region": ["EU", "US"][n % 2]}
    print(json.dumps({"hex": value.hex(), "expected": expected,
                      "key_hex": key_serializer(key, key_ctx).hex(), "key_expected": key}))
