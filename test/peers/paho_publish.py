"""Publishes device messages with stock paho-mqtt, the way a paho-based firmware would.

Usage: paho_publish.py PORT TOKEN PROTOCOL(311|5) MESSAGES_JSON
MESSAGES_JSON: [{"topic": ..., "payload": ..., "qos": 0|1|2}, ...]
Prints one JSON line: {"connack": code, "acks": [{"mid", "rc", "reason"}...]} and exits; exits 3
on its own deadline (so a hung broker fails the test, never hangs it).
"""
import json
import os
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

threading.Timer(20, lambda: (print(json.dumps({"error": "deadline"}), flush=True), os._exit(3))).start()
port, token, proto, messages = int(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
protocol = mqtt.MQTTv5 if proto == "5" else mqtt.MQTTv311
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-{proto}-{os.getpid()}", protocol=protocol)
client.username_pw_set(token)
connected = threading.Event()
result = {"connack": None, "acks": []}
acked = threading.Semaphore(0)


def on_connect(_c, _u, _flags, rc, _props=None):
    result["connack"] = rc.value if hasattr(rc, "value") else int(rc)
    connected.set()


def on_publish(_c, _u, mid, rc=None, _props=None):
    result["acks"].append({"mid": mid, "rc": rc.value if hasattr(rc, "value") else rc, "reason": str(rc)})
    acked.release()


client.on_connect = on_connect
client.on_publish = on_publish
client.connect("127.0.0.1", port, keepalive=30)
client.loop_start()
connected.wait(10)
if result["connack"] == 0:
    for m in messages:
        props = None
        if protocol == mqtt.MQTTv5 and m.get("userProperties"):
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [tuple(p) for p in m["userProperties"]]
        client.publish(m["topic"], m["payload"], qos=m.get("qos", 1), properties=props)
    # paho calls on_publish for every message: QoS 0 once sent, QoS 1 on PUBACK, QoS 2 on PUBCOMP.
    for _ in messages:
        acked.acquire(timeout=10)
print(json.dumps(result), flush=True)
client.disconnect()
client.loop_stop()
os._exit(0)
