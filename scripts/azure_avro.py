"""Writes Avro events as Azure's own schema-registry encoder does (azure-schemaregistry-
avroencoder's AvroEncoder: the Avro datum as the body, `avro/binary+<schema id>` as the content
type), for the Event Hubs schema-registry test. The encoder's registry client is stood in for
(its register call hands out ids, as the service would); the test serves the schemas it printed
over Azure Schema Registry's REST API.

Usage: azure_avro.py <events per version>
Prints one JSON line per schema ({"schema_id", "schema"}) and per event ({"hex", "content_type",
"expected"}: the JSON the book's Avro table makes of it, computed here). The first half of the
events is written under version 1; the second under version 2, which adds the field `added`.
"""
import datetime
import json
import sys
import uuid

from azure.schemaregistry.encoder.avroencoder import AvroEncoder


class Registered:
    def __init__(self, schema_id):
        self.id = schema_id


class StandInClient:
    """The two calls AvroEncoder makes to register a schema and close."""

    def __init__(self):
        self.ids = {}

    def register_schema(self, group_name, name, definition, format, **kwargs):
        if definition not in self.ids:
            self.ids[definition] = uuid.uuid4().hex
            print(json.dumps({"schema_id": self.ids[definition], "schema": definition}))
        return Registered(self.ids[definition])

    def close(self):
        pass


V1 = {"type": "record", "name": "Reading", "namespace": "plant", "fields": [
    {"name": "id", "type": "long"},
    {"name": "sensor", "type": "string"},
    {"name": "value", "type": "double"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
]}
V2 = dict(V1, fields=V1["fields"] + [{"name": "added", "type": ["null", "string"], "default": None}])

per_version = int(sys.argv[1])
encoder = AvroEncoder(client=StandInClient(), group_name="readings", auto_register=True)
UTC = datetime.timezone.utc
for n in range(2 * per_version):
    second = n >= per_version
    at = datetime.datetime(2026, 12, 7, 6, 0, 0, tzinfo=UTC) + datetime.timedelta(milliseconds=1001 * n)
    record = {"id": n, "sensor": "s-%d ü" % (n % 5), "value": n / 8, "at": at}
    expected = dict(record, at=at.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (at.microsecond // 1000))
    if second:
        record["added"] = expected["added"] = "v2-%d" % n
    message = encoder.encode(record, schema=json.dumps(V2 if second else V1))
    print(json.dumps({"hex": bytes(message["content"]).hex(), "content_type": message["content_type"],
                      "expected": expected}))
