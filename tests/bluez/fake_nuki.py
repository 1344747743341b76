"""dbusmock template: BlueZ (the stock bluez5 template) plus one Nuki-like device whose GATT
writes are relayed to the test process, which runs the fake lock and says what to indicate.

Environment: FAKENUKI_RELAY (Unix socket of the test's relay), FAKENUKI_ADDRESS, FAKENUKI_NAME,
FAKENUKI_ON_DISCOVERY (1: the device appears only once a discovery starts).
Relay protocol, little-endian: request  u8 channel (0 pairing GDIO, 1 keyturner USDIO) | u32 len | bytes
                                reply    u8 action (0 indicate, 1 indicate then disconnect)
                                         | u16 count | count x (u32 len | bytes)
Each reply message is indicated on the written characteristic in 20-byte pieces.
Adapted from shared/tools/fake-bluez/fakenuki.py (the XML shim and the Connect fix are its).
"""
import os
import socket
import struct

import dbus
from dbusmock import mockobject
from dbusmock.templates import bluez5
from dbusmock.templates.bluez5 import *  # noqa  BUS_NAME, MAIN_OBJ, SYSTEM_BUS, IS_OBJECT_MANAGER ...

# dbusmock appends property-only <interface>s after child <node>s in Introspect XML;
# bluez-async's serde-xml-rs parser rejects non-contiguous <interface> elements.
# Real BlueZ emits interfaces first, so reorder.
import xml.etree.ElementTree as _ET


class _ETShim:
    fromstring = staticmethod(_ET.fromstring)
    Element = _ET.Element

    @staticmethod
    def tostring(tree, **kw):
        nodes = [c for c in list(tree) if c.tag == "node"]
        for n in nodes:
            tree.remove(n)
        tree.extend(nodes)
        return _ET.tostring(tree, **kw)


mockobject.ET = _ETShim  # python-dbusmock >= 0.3x
mockobject.ElementTree = _ETShim  # python-dbusmock 0.28 (Debian 12 python3-dbusmock)

GATT_SERVICE_IFACE = "org.bluez.GattService1"
GATT_CHRC_IFACE = "org.bluez.GattCharacteristic1"
PAIRING_SVC = "a92ee100-5501-11e4-916c-0800200c9a66"
PAIRING_GDIO = "a92ee101-5501-11e4-916c-0800200c9a66"
KEYTURNER_SVC = "a92ee200-5501-11e4-916c-0800200c9a66"
KEYTURNER_GDIO = "a92ee201-5501-11e4-916c-0800200c9a66"
KEYTURNER_USDIO = "a92ee202-5501-11e4-916c-0800200c9a66"
CHANNELS = {PAIRING_GDIO: 0, KEYTURNER_USDIO: 1}

_relay = None
_device = None


def _relay_sock():
    global _relay
    if _relay is None:
        _relay = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        _relay.connect(os.environ["FAKENUKI_RELAY"])
    return _relay


def _read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("relay closed")
        buf += chunk
    return buf


def _ask(channel, data):
    """Sends one write to the test's fake lock; returns (disconnect, [messages])."""
    global _relay
    try:
        s = _relay_sock()
        s.sendall(struct.pack("<BI", channel, len(data)) + data)
        action, count = struct.unpack("<BH", _read_exact(s, 3))
        msgs = []
        for _ in range(count):
            (n,) = struct.unpack("<I", _read_exact(s, 4))
            msgs.append(_read_exact(s, n))
        return action == 1, msgs
    except OSError:
        _relay = None
        raise


def _emit_props(obj, iface, changed):
    obj.EmitSignal(dbus.PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as", [iface, changed, []])


def _set_connected(device, connected):
    device.connected = connected
    device.props[DEVICE_IFACE]["Connected"] = dbus.Boolean(connected)
    device.props[DEVICE_IFACE]["ServicesResolved"] = dbus.Boolean(connected)
    _emit_props(device, DEVICE_IFACE, {"Connected": dbus.Boolean(connected),
                                       "ServicesResolved": dbus.Boolean(connected)})


@dbus.service.method(DEVICE_IFACE, in_signature="", out_signature="")
def Connect(device):
    # bluez5 template only emits Connected; btleplug (bluez-async) also waits for ServicesResolved.
    _set_connected(device, True)


@dbus.service.method(DEVICE_IFACE, in_signature="", out_signature="")
def Disconnect(device):
    _set_connected(device, False)


@dbus.service.method(GATT_CHRC_IFACE, in_signature="a{sv}", out_signature="ay")
def ReadValue(chrc, options):
    return dbus.ByteArray(bytes(chrc.props[GATT_CHRC_IFACE]["Value"]))


@dbus.service.method(GATT_CHRC_IFACE, in_signature="", out_signature="")
def StartNotify(chrc):
    chrc.props[GATT_CHRC_IFACE]["Notifying"] = dbus.Boolean(True)
    _emit_props(chrc, GATT_CHRC_IFACE, {"Notifying": dbus.Boolean(True)})


@dbus.service.method(GATT_CHRC_IFACE, in_signature="", out_signature="")
def StopNotify(chrc):
    chrc.props[GATT_CHRC_IFACE]["Notifying"] = dbus.Boolean(False)
    _emit_props(chrc, GATT_CHRC_IFACE, {"Notifying": dbus.Boolean(False)})


def _indicate(chrc, data):
    """Sends `data` as a sequence of 20-byte indications (PropertiesChanged Value)."""
    for i in range(0, len(data), 20):
        chunk = dbus.Array([dbus.Byte(b) for b in data[i:i + 20]], signature="y")
        chrc.props[GATT_CHRC_IFACE]["Value"] = chunk
        _emit_props(chrc, GATT_CHRC_IFACE, {"Value": chunk})


@dbus.service.method(GATT_CHRC_IFACE, in_signature="aya{sv}", out_signature="")
def WriteValue(chrc, value, options):
    channel = CHANNELS.get(str(chrc.props[GATT_CHRC_IFACE]["UUID"]))
    if channel is None or not _device.connected:
        return
    disconnect, msgs = _ask(channel, bytes(value))
    if chrc.props[GATT_CHRC_IFACE]["Notifying"]:
        for m in msgs:
            _indicate(chrc, m)
    if disconnect:
        _set_connected(_device, False)


def _add_chrc(mock, svc_path, idx, uuid):
    path = f"{svc_path}/char{idx:04x}"
    mock.AddObject(path, GATT_CHRC_IFACE, {
        "UUID": dbus.String(uuid),
        "Service": dbus.ObjectPath(svc_path),
        "Flags": dbus.Array(["write", "indicate"], signature="s"),
        "Notifying": dbus.Boolean(False),
        "Value": dbus.Array([], signature="y"),
    }, [
        ("ReadValue", "a{sv}", "ay", ReadValue),
        ("WriteValue", "aya{sv}", "", WriteValue),
        ("StartNotify", "", "", StartNotify),
        ("StopNotify", "", "", StopNotify),
    ])
    return path


def _add_service(mock, dev_path, idx, uuid, chrcs):
    path = f"{dev_path}/service{idx:04x}"
    mock.AddObject(path, GATT_SERVICE_IFACE, {
        "UUID": dbus.String(uuid),
        "Primary": dbus.Boolean(True),
        "Device": dbus.ObjectPath(dev_path),
        "Includes": dbus.Array([], signature="o"),
    }, [])
    for cidx, cuuid in chrcs:
        _add_chrc(mock, path, cidx, cuuid)
    return path


def _add_nuki(mock):
    global _device
    address = os.environ.get("FAKENUKI_ADDRESS", "54:D2:72:AA:BB:CC")
    name = os.environ.get("FAKENUKI_NAME", "Nuki_2A3B4C5D")
    dev_path = mock.AddDevice("hci0", address, name)
    _device = mockobject.objects[dev_path]
    _device.connected = False
    _device.AddMethods(DEVICE_IFACE, [("Connect", "", "", Connect), ("Disconnect", "", "", Disconnect)])
    _device.props[DEVICE_IFACE]["UUIDs"] = dbus.Array([KEYTURNER_SVC], signature="s")
    _add_service(mock, dev_path, 0x10, PAIRING_SVC, [(0x11, PAIRING_GDIO)])
    _add_service(mock, dev_path, 0x20, KEYTURNER_SVC, [(0x21, KEYTURNER_GDIO), (0x22, KEYTURNER_USDIO)])


def _plug(mock, on_discovery):
    """Adds adapter hci0 and, at once or once a discovery starts, the lock."""
    global _device
    _device = None
    adapter_path = mock.AddAdapter("hci0", "fake-hub")
    if not on_discovery:
        _add_nuki(mock)
        return
    # A lock this bluetoothd has not cached (as after a restart: BlueZ keeps
    # only bonded devices): its object appears once a discovery runs and the
    # lock advertises.
    adapter = mockobject.objects[adapter_path]

    def start_discovery(adapter):
        # The template's StartDiscovery expects SetDiscoveryFilter first.
        adapter.props[ADAPTER_IFACE].setdefault("DiscoveryFilter", None)
        bluez5.StartDiscovery(adapter)
        if _device is None:
            _add_nuki(mock)

    adapter.AddMethods(ADAPTER_IFACE, [("StartDiscovery", "", "", start_discovery)])


def load(mock, parameters):
    bluez5.load(mock, parameters)
    mockobject.objects.setdefault("/", mock)  # main object is registered only after load()
    on_discovery = os.environ.get("FAKENUKI_ON_DISCOVERY") == "1"
    _plug(mock, on_discovery)

    # The USB adapter unplugged and plugged in again (bluetoothd stays up).
    def unplug(main):
        main.RemoveAdapterWithDevices("hci0")

    def plug(main):
        _plug(main, True)

    mock.AddMethods(BLUEZ_MOCK_IFACE, [("UnplugAdapter", "", "", unplug), ("PlugAdapter", "", "", plug)])
