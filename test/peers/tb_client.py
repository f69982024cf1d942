"""ThingsBoard's Python device SDK (tb-mqtt-client, as shipped: MQTT 5) against Sluice.

Usage: tb_client.py PORT TOKEN device|gateway
Prints one JSON line per step: {"step", "rc"} where rc is the SDK's result of waiting for the
PUBACK (0: delivered), then {"step": "done"}; exits 3 on its own deadline, so a broker that never
answers fails the test instead of hanging it.
"""
import json
import logging
import os
import sys
import threading
import time

logging.basicConfig(level=logging.WARNING)
threading.Timer(40, lambda: (print(json.dumps({"step": "deadline"}), flush=True), os._exit(3))).start()

from tb_device_mqtt import TBDeviceMqttClient  # noqa: E402
from tb_gateway_mqtt import TBGatewayMqttClient  # noqa: E402

port, token, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def say(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def connected(client, seconds=10):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if client.is_connected():
            return True
        time.sleep(0.02)
    return False


def sent(step, info):
    rc = info.get()
    say(step, rc=rc if isinstance(rc, int) else str(rc))


if mode == "device":
    client = TBDeviceMqttClient("127.0.0.1", port, username=token)
    client.connect()
    say("connect", connected=connected(client))
    sent("telemetry values", client.send_telemetry({"temperature": 21.5, "on": True}))
    sent("telemetry ts", client.send_telemetry({"ts": 1764633600000, "values": {"temperature": 22.0}}))
    sent("telemetry array", client.send_telemetry([{"ts": 1764633601000, "values": {"t": 1}}, {"ts": 1764633602000, "values": {"t": 2}}]))
    sent("attributes", client.send_attributes({"firmware": "1.0.3", "model": "x1"}))
else:
    client = TBGatewayMqttClient("127.0.0.1", port, username=token)
    client.connect()
    say("connect", connected=connected(client))
    sent("connect device", client.gw_connect_device("Sensor A", "thermometer"))
    sent("telemetry ts", client.gw_send_telemetry("Sensor A", {"ts": 1764633600000, "values": {"temperature": 19.5}}))
    sent("telemetry values", client.gw_send_telemetry("Sensor B", {"humidity": 40}))
    sent("attributes", client.gw_send_attributes("Sensor A", {"model": "T-1000"}))
    sent("disconnect device", client.gw_disconnect_device("Sensor A"))
say("done", rate_limits_received=bool(getattr(client, "rate_limits_received", False)))
client.disconnect()
client.stop()
os._exit(0)
