"""A small OpenFX host in Python (ctypes), to load the native bundle in tests.

It implements what an image-effect host offers a filter plugin, written from the OpenFX
specification: the property suite over Python dicts, the image effect suite (clips, images with
any row stride, bounds and premultiplication), the parameter suite (values, keyframes with
linear interpolation) and the message suite (messages are recorded). Handles are small
integers that index the host's objects. It drives the life cycle the way a host does: load,
describe, describe in context, create instance, regions of interest, frames needed, begin
sequence, render per tile, end sequence, destroy, unload.
"""

from __future__ import annotations

import ctypes as C
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

OK, FAILED, BAD_HANDLE, UNKNOWN, BAD_INDEX, UNSUPPORTED = 0, 1, 9, 3, 10, 5
REPLY_DEFAULT = 14
DEPTHS = {"byte": ("OfxBitDepthByte", np.uint8), "short": ("OfxBitDepthShort", np.uint16),
          "half": ("OfxBitDepthHalf", np.float16), "float": ("OfxBitDepthFloat", np.float32)}
MAX = {"byte": 255.0, "short": 65535.0, "half": 1.0, "float": 1.0}

H = C.c_void_p
S = C.c_int
STR = C.c_char_p


class RectD(C.Structure):
    _fields_ = [("x1", C.c_double), ("y1", C.c_double), ("x2", C.c_double), ("y2", C.c_double)]


class OfxHost(C.Structure):
    _fields_ = [("host", H), ("fetchSuite", C.CFUNCTYPE(H, H, STR, S))]


ENTRY = C.CFUNCTYPE(S, STR, H, H, H)


class OfxPlugin(C.Structure):
    _fields_ = [("pluginApi", STR), ("apiVersion", S), ("pluginIdentifier", STR),
                ("pluginVersionMajor", C.c_uint), ("pluginVersionMinor", C.c_uint),
                ("setHost", C.CFUNCTYPE(None, C.POINTER(OfxHost))), ("mainEntry", ENTRY)]


def _suite(name: str, members: list[tuple[str, Any]]) -> type[C.Structure]:
    return type(name, (C.Structure,), {"_fields_": members})


F = C.CFUNCTYPE
PROPERTY_SUITE = _suite("PropertySuite", [
    ("propSetPointer", F(S, H, STR, S, H)), ("propSetString", F(S, H, STR, S, STR)),
    ("propSetDouble", F(S, H, STR, S, C.c_double)), ("propSetInt", F(S, H, STR, S, S)),
    ("propSetPointerN", F(S, H, STR, S, C.POINTER(H))),
    ("propSetStringN", F(S, H, STR, S, C.POINTER(STR))),
    ("propSetDoubleN", F(S, H, STR, S, C.POINTER(C.c_double))),
    ("propSetIntN", F(S, H, STR, S, C.POINTER(S))),
    ("propGetPointer", F(S, H, STR, S, C.POINTER(H))),
    ("propGetString", F(S, H, STR, S, C.POINTER(H))),
    ("propGetDouble", F(S, H, STR, S, C.POINTER(C.c_double))),
    ("propGetInt", F(S, H, STR, S, C.POINTER(S))),
    ("propGetPointerN", F(S, H, STR, S, C.POINTER(H))),
    ("propGetStringN", F(S, H, STR, S, C.POINTER(H))),
    ("propGetDoubleN", F(S, H, STR, S, C.POINTER(C.c_double))),
    ("propGetIntN", F(S, H, STR, S, C.POINTER(S))),
    ("propReset", F(S, H, STR)), ("propGetDimension", F(S, H, STR, C.POINTER(S)))])
EFFECT_SUITE = _suite("ImageEffectSuite", [
    ("getPropertySet", F(S, H, C.POINTER(H))), ("getParamSet", F(S, H, C.POINTER(H))),
    ("clipDefine", F(S, H, STR, C.POINTER(H))),
    ("clipGetHandle", F(S, H, STR, C.POINTER(H), C.POINTER(H))),
    ("clipGetPropertySet", F(S, H, C.POINTER(H))),
    ("clipGetImage", F(S, H, C.c_double, C.POINTER(RectD), C.POINTER(H))),
    ("clipReleaseImage", F(S, H)),
    ("clipGetRegionOfDefinition", F(S, H, C.c_double, C.POINTER(RectD))),
    ("abort", F(S, H)), ("imageMemoryAlloc", F(S)), ("imageMemoryFree", F(S)),
    ("imageMemoryLock", F(S)), ("imageMemoryUnlock", F(S))])
# The value getters are variadic in C; on the x86-64 and AArch64 Linux calling conventions a
# pointer after the fixed arguments arrives where a fixed pointer argument would.
PARAM_SUITE = _suite("ParameterSuite", [
    ("paramDefine", F(S, H, STR, STR, C.POINTER(H))),
    ("paramGetHandle", F(S, H, STR, C.POINTER(H), C.POINTER(H))),
    ("paramSetGetPropertySet", F(S, H, C.POINTER(H))),
    ("paramGetPropertySet", F(S, H, C.POINTER(H))),
    ("paramGetValue", F(S, H, H)), ("paramGetValueAtTime", F(S, H, C.c_double, H)),
    ("paramGetDerivative", F(S)), ("paramGetIntegral", F(S)), ("paramSetValue", F(S)),
    ("paramSetValueAtTime", F(S)), ("paramGetNumKeys", F(S, H, C.POINTER(C.c_uint))),
    ("paramGetKeyTime", F(S, H, C.c_uint, C.POINTER(C.c_double))),
    ("paramGetKeyIndex", F(S)), ("paramDeleteKey", F(S)), ("paramDeleteAllKeys", F(S)),
    ("paramCopy", F(S)), ("paramEditBegin", F(S)), ("paramEditEnd", F(S))])
# message(handle, type, id, format, ...): the bridge always passes "%s" and one string.
MESSAGE_SUITE = _suite("MessageSuite", [
    ("message", F(S, H, STR, STR, STR, STR)),
    ("setPersistentMessage", F(S, H, STR, STR, STR, STR)),
    ("clearPersistentMessage", F(S, H))])


class Props:
    """A property set: name -> list of values; strings handed out stay alive until changed."""

    def __init__(self, **values: Any) -> None:
        self.values: dict[str, list[Any]] = {k: v if isinstance(v, list) else [v]
                                             for k, v in values.items()}
        self._strings: dict[str, list[C.Array]] = {}

    def set(self, name: str, index: int, value: Any) -> None:
        items = self.values.setdefault(name, [])
        while len(items) <= index:
            items.append(None)
        items[index] = value
        self._strings.pop(name, None)

    def get(self, name: str, index: int = 0) -> Any:
        return self.values[name][index]

    def string_pointer(self, name: str, index: int) -> int:
        kept = self._strings.setdefault(name, [])
        buffer = C.create_string_buffer(str(self.values[name][index]).encode())
        kept.append(buffer)
        return C.addressof(buffer)


@dataclass
class Param:
    name: str
    kind: str  # OfxParamType...
    props: Props
    value: Any = None
    keys: list[tuple[float, float]] = field(default_factory=list)  # animation, by time

    def at(self, time: float) -> Any:
        if not self.keys:
            return self.value
        times = [t for t, _ in self.keys]
        values = [v for _, v in self.keys]
        return float(np.interp(time, times, values))


@dataclass
class Image:
    props: Props
    memory: np.ndarray  # what the data pointer points into, kept alive


@dataclass
class Clip:
    name: str
    props: Props
    frames: dict[float, np.ndarray] = field(default_factory=dict)  # Source: (h, w, 4), top-down
    output: dict[float, np.ndarray] = field(default_factory=dict)  # Output images, bottom-up
    rod: tuple[int, int, int, int] = (0, 0, 0, 0)
    layout: str = "plain"  # plain | padded | negative (rows top-first, rowBytes < 0)
    premultiplied: bool = False
    dtype: Any = np.uint8  # of the images' samples
    laid: dict[float, tuple[np.ndarray, int, int]] = field(default_factory=dict)  # Source memory


class Effect:
    """A descriptor or an instance: its property set, parameter set and clips."""

    def __init__(self, props: Props) -> None:
        self.props = props
        self.param_props = Props()
        self.params: dict[str, Param] = {}
        self.clips: dict[str, Clip] = {}


class Host:
    """Load the bundle at ``binary`` and drive its plugins."""

    def __init__(self, binary: Path) -> None:
        self.lib = C.CDLL(str(binary))
        self.lib.OfxGetPlugin.restype = C.POINTER(OfxPlugin)
        self.objects: dict[int, Any] = {}
        self._ids = itertools.count(1)
        self._handles: dict[int, Any] = {}  # host objects handed to the plugin, by handle
        self._kept_images: dict[int, np.ndarray] = {}  # fetched and not released
        self.messages: list[tuple[str, str]] = []  # (type, text)
        self.persistent: dict[int, str] = {}
        self.images_out = 0  # images fetched and not yet released
        self.host_props = Props(OfxPropName="org.vstpipe.tests.host", OfxPropLabel="tests")
        self._suites = self._make_suites()
        self.ofx_host = OfxHost(self.handle(self.host_props), OfxHost._fields_[1][1](self._fetch))

    # -- handles ---------------------------------------------------------------------------

    def handle(self, obj: Any) -> int:
        number = next(self._ids)
        self.objects[number] = obj
        return number

    def _obj(self, handle: int | None) -> Any:
        return self.objects.get(handle or 0)

    # -- suites ----------------------------------------------------------------------------

    def _make_suites(self) -> dict[str, Any]:
        prop = PROPERTY_SUITE(*[t(getattr(self, f"_p_{n}")) for n, t in PROPERTY_SUITE._fields_])
        effect = EFFECT_SUITE(*[t(getattr(self, f"_e_{n}", self._unsupported))
                                for n, t in EFFECT_SUITE._fields_])
        param = PARAM_SUITE(*[t(getattr(self, f"_a_{n}", self._unsupported))
                              for n, t in PARAM_SUITE._fields_])
        message = MESSAGE_SUITE(*[t(getattr(self, f"_m_{n}")) for n, t in MESSAGE_SUITE._fields_])
        return {"OfxPropertySuite": prop, "OfxImageEffectSuite": effect,
                "OfxParameterSuite": param, "OfxMessageSuite": message}

    def _fetch(self, host: int, name: bytes, version: int) -> int | None:
        suite = self._suites.get(name.decode())
        if suite is None or version > (2 if name == b"OfxMessageSuite" else 1):
            return None
        return C.addressof(suite)

    @staticmethod
    def _unsupported(*_: Any) -> int:
        return UNSUPPORTED

    def _props(self, handle: int) -> Props | None:
        obj = self._obj(handle)
        return obj if isinstance(obj, Props) else None

    def _setter(self, handle: int, name: bytes, index: int, value: Any) -> int:
        props = self._props(handle)
        if props is None:
            return BAD_HANDLE
        props.set(name.decode(), index, value)
        return OK

    def _p_propSetPointer(self, h, n, i, v):
        return self._setter(h, n, i, v)

    def _p_propSetString(self, h, n, i, v):
        return self._setter(h, n, i, v.decode())

    def _p_propSetDouble(self, h, n, i, v):
        return self._setter(h, n, i, float(v))

    def _p_propSetInt(self, h, n, i, v):
        return self._setter(h, n, i, int(v))

    def _set_n(self, h: int, n: bytes, count: int, values: Any, conv: Any) -> int:
        for i in range(count):
            status = self._setter(h, n, i, conv(values[i]))
            if status:
                return status
        return OK

    def _p_propSetPointerN(self, h, n, c, v):
        return self._set_n(h, n, c, v, lambda x: x)

    def _p_propSetStringN(self, h, n, c, v):
        return self._set_n(h, n, c, v, lambda x: x.decode())

    def _p_propSetDoubleN(self, h, n, c, v):
        return self._set_n(h, n, c, v, float)

    def _p_propSetIntN(self, h, n, c, v):
        return self._set_n(h, n, c, v, int)

    def _getter(self, h: int, n: bytes, i: int, out: Any, kind: str) -> int:
        props = self._props(h)
        if props is None:
            return BAD_HANDLE
        name = n.decode()
        if name not in props.values:
            return UNKNOWN
        if i >= len(props.values[name]) or props.values[name][i] is None:
            return BAD_INDEX
        if kind == "string":
            out[0] = props.string_pointer(name, i)
        else:
            out[0] = props.get(name, i)
        return OK

    def _p_propGetPointer(self, h, n, i, out):
        return self._getter(h, n, i, out, "pointer")

    def _p_propGetString(self, h, n, i, out):
        return self._getter(h, n, i, out, "string")

    def _p_propGetDouble(self, h, n, i, out):
        return self._getter(h, n, i, out, "double")

    def _p_propGetInt(self, h, n, i, out):
        return self._getter(h, n, i, out, "int")

    def _get_n(self, h: int, n: bytes, count: int, out: Any, kind: str) -> int:
        for i in range(count):
            status = self._getter(h, n, i, C.cast(C.byref(out.contents, i * C.sizeof(
                out._type_)), C.POINTER(out._type_)), kind)
            if status:
                return status
        return OK

    def _p_propGetPointerN(self, h, n, c, out):
        return self._get_n(h, n, c, out, "pointer")

    def _p_propGetStringN(self, h, n, c, out):
        return self._get_n(h, n, c, out, "string")

    def _p_propGetDoubleN(self, h, n, c, out):
        return self._get_n(h, n, c, out, "double")

    def _p_propGetIntN(self, h, n, c, out):
        return self._get_n(h, n, c, out, "int")

    def _p_propReset(self, h, n):
        props = self._props(h)
        if props is not None:
            props.values.pop(n.decode(), None)
        return OK

    def _p_propGetDimension(self, h, n, out):
        props = self._props(h)
        if props is None:
            return BAD_HANDLE
        out[0] = len(props.values.get(n.decode(), []))
        return OK

    # image effect suite

    def _e_getPropertySet(self, h, out):
        effect = self._obj(h)
        if not isinstance(effect, Effect):
            return BAD_HANDLE
        out[0] = self._handle_of(effect.props)
        return OK

    def _e_getParamSet(self, h, out):
        effect = self._obj(h)
        if not isinstance(effect, Effect):
            return BAD_HANDLE
        out[0] = self._handle_of(effect)
        return OK

    def _e_clipDefine(self, h, name, out):
        effect = self._obj(h)
        clip = Clip(name.decode(), Props(OfxPropName=name.decode()))
        effect.clips[clip.name] = clip
        out[0] = self._handle_of(clip.props)
        return OK

    def _e_clipGetHandle(self, h, name, out, props_out):
        effect = self._obj(h)
        clip = effect.clips.get(name.decode()) if isinstance(effect, Effect) else None
        if clip is None:
            return UNKNOWN
        out[0] = self._handle_of(clip)
        if props_out:
            props_out[0] = self._handle_of(clip.props)
        return OK

    def _e_clipGetPropertySet(self, h, out):
        clip = self._obj(h)
        if not isinstance(clip, Clip):
            return BAD_HANDLE
        out[0] = self._handle_of(clip.props)
        return OK

    def _e_clipGetRegionOfDefinition(self, h, time, out):
        clip = self._obj(h)
        if not isinstance(clip, Clip):
            return BAD_HANDLE
        out[0] = RectD(*map(float, clip.rod))
        return OK

    def _e_clipGetImage(self, h, time, region, out):
        clip = self._obj(h)
        if not isinstance(clip, Clip):
            return BAD_HANDLE
        x1, y1, x2, y2 = clip.rod
        depth_name = clip.props.get("OfxImageEffectPropPixelDepth")
        if clip.name == "Source":
            top_down = clip.frames.get(float(time))
            if top_down is None:
                return FAILED
            if float(time) not in clip.laid:  # a host keeps its images in its own layout
                clip.laid[float(time)] = self._lay_out(top_down, clip.layout)
            memory, data, row_bytes = clip.laid[float(time)]
            premult = "OfxImageAlphaPremultiplied" if clip.premultiplied else "OfxImageOpaque"
            uid = f"{clip.name}@{time}:{id(top_down)}"
        else:
            memory = clip.output.setdefault(float(time), np.zeros(
                (y2 - y1, x2 - x1, 4), dtype=clip.dtype))
            data, row_bytes = memory.ctypes.data, memory.strides[0]
            premult = "OfxImageAlphaPremultiplied" if clip.premultiplied else "OfxImageOpaque"
            uid = f"out@{time}"
        props = Props(OfxImagePropData=data, OfxImagePropBounds=[x1, y1, x2, y2],
                      OfxImagePropRowBytes=row_bytes, OfxImageEffectPropPixelDepth=depth_name,
                      OfxImageEffectPropComponents="OfxImageComponentRGBA",
                      OfxImageEffectPropPreMultiplication=premult,
                      OfxImagePropUniqueIdentifier=uid, OfxImagePropPixelAspectRatio=1.0)
        out[0] = self.handle(Image(props, memory))
        self.objects[out[0]] = props  # the image handle is its property set
        self._kept_images[out[0]] = memory
        self.images_out += 1
        return OK

    def _e_clipReleaseImage(self, h):
        if h not in self._kept_images:
            return BAD_HANDLE
        del self._kept_images[h]
        del self.objects[h]
        self.images_out -= 1
        return OK

    def _e_abort(self, h):
        return 0

    @staticmethod
    def _lay_out(top_down: np.ndarray, layout: str) -> tuple[np.ndarray, int, int]:
        """Memory for a Source image and (data pointer, rowBytes) for its bottom-left pixel."""
        if layout == "negative":  # rows stored top first: the bottom row is the last in memory
            memory = np.ascontiguousarray(top_down)
            return memory, memory[-1].ctypes.data, -memory.strides[0]
        bottom_up = np.ascontiguousarray(top_down[::-1])
        if layout == "padded":  # 96 spare bytes at the end of each row
            h, w, _ = bottom_up.shape
            pad = 96 // bottom_up.itemsize
            memory = np.zeros((h, w * 4 + pad), dtype=bottom_up.dtype)
            memory[:, :w * 4] = bottom_up.reshape(h, w * 4)
            return memory, memory.ctypes.data, memory.strides[0]
        return bottom_up, bottom_up.ctypes.data, bottom_up.strides[0]

    # parameter suite

    def _a_paramDefine(self, h, kind, name, out):
        effect = self._obj(h)
        param = Param(name.decode(), kind.decode(), Props(OfxParamPropType=kind.decode()))
        effect.params[param.name] = param
        if out:
            out[0] = self._handle_of(param.props)
        return OK

    def _a_paramGetHandle(self, h, name, out, props_out):
        effect = self._obj(h)
        param = effect.params.get(name.decode()) if isinstance(effect, Effect) else None
        if param is None:
            return UNKNOWN
        out[0] = self._handle_of(param)
        if props_out:
            props_out[0] = self._handle_of(param.props)
        return OK

    def _a_paramSetGetPropertySet(self, h, out):
        out[0] = self._handle_of(self._obj(h).param_props)
        return OK

    def _a_paramGetPropertySet(self, h, out):
        out[0] = self._handle_of(self._obj(h).props)
        return OK

    def _value_to(self, param: Param, value: Any, pointer: int) -> int:
        if param.kind == "OfxParamTypeDouble":
            C.cast(pointer, C.POINTER(C.c_double))[0] = float(value)
        elif param.kind in ("OfxParamTypeInteger", "OfxParamTypeBoolean"):
            C.cast(pointer, C.POINTER(S))[0] = int(value)
        elif param.kind == "OfxParamTypeChoice":
            options = param.props.values.get("OfxParamPropChoiceOption", [])
            C.cast(pointer, C.POINTER(S))[0] = options.index(value) if isinstance(value, str) \
                else int(value)
        else:
            param.props.set("__value", 0, value)
            C.cast(pointer, C.POINTER(H))[0] = param.props.string_pointer("__value", 0)
        return OK

    def _a_paramGetValue(self, h, pointer):
        param = self._obj(h)
        return self._value_to(param, param.at(0.0), pointer)

    def _a_paramGetValueAtTime(self, h, time, pointer):
        param = self._obj(h)
        return self._value_to(param, param.at(time), pointer)

    def _a_paramGetNumKeys(self, h, out):
        out[0] = len(self._obj(h).keys)
        return OK

    def _a_paramGetKeyTime(self, h, nth, out):
        param = self._obj(h)
        if nth >= len(param.keys):
            return BAD_INDEX
        out[0] = param.keys[nth][0]
        return OK

    # message suite

    def _m_message(self, h, kind, ident, fmt, arg):
        self.messages.append((kind.decode(), (arg if fmt == b"%s" else fmt).decode()))
        return OK

    def _m_setPersistentMessage(self, h, kind, ident, fmt, arg):
        self.persistent[h] = (arg if fmt == b"%s" else fmt).decode()
        return OK

    def _m_clearPersistentMessage(self, h):
        self.persistent.pop(h, None)
        return OK

    def _handle_of(self, obj: Any) -> int:
        """The one handle of a host object (made on first use)."""
        for number, known in self._handles.items():
            if known is obj:
                return number
        number = self.handle(obj)
        self._handles[number] = obj
        return number

    # -- driving a plugin --------------------------------------------------------------------

    def plugins(self) -> dict[str, OfxPlugin]:
        count = self.lib.OfxGetNumberOfPlugins()
        found = {}
        for i in range(count):
            plugin = self.lib.OfxGetPlugin(i).contents
            found[plugin.pluginIdentifier.decode()] = plugin
        return found

    def call(self, plugin: OfxPlugin, action: str, handle: int | None = None,
             in_args: Props | None = None, out_args: Props | None = None) -> int:
        return plugin.mainEntry(action.encode(), handle,
                                self._handle_of(in_args) if in_args is not None else None,
                                self._handle_of(out_args) if out_args is not None else None)


class Instance:
    """One plugin loaded, described in ``context`` and instantiated over ``frames``."""

    def __init__(self, host: Host, identifier: str, frames: list[np.ndarray], depth: str,
                 context: str = "filter", origin: tuple[int, int] = (0, 0),
                 layout: str = "plain", premultiplied: bool = False) -> None:
        self.host, self.depth = host, depth
        self.plugin = host.plugins()[identifier]
        self.plugin.setHost(C.pointer(host.ofx_host))
        assert host.call(self.plugin, "OfxActionLoad") == OK
        self.descriptor = Effect(Props())
        assert host.call(self.plugin, "OfxActionDescribe", host._handle_of(self.descriptor)) == OK
        ofx_context = f"OfxImageEffectContext{context.capitalize()}"
        self.in_context = Effect(Props())
        status = host.call(self.plugin, "OfxImageEffectActionDescribeInContext",
                           host._handle_of(self.in_context),
                           Props(OfxImageEffectPropContext=ofx_context))
        assert status == OK, status
        h, w = frames[0].shape[:2]
        x0, y0 = origin
        ofx_depth = DEPTHS[depth][0]
        self.effect = Effect(Props(OfxImageEffectPropContext=ofx_context, OfxPropInstanceData=None))
        for name, clip in self.in_context.clips.items():
            props = Props(**{k: list(v) for k, v in clip.props.values.items()})
            props.set("OfxImageEffectPropPixelDepth", 0, ofx_depth)
            props.set("OfxImageEffectPropComponents", 0, "OfxImageComponentRGBA")
            props.set("OfxImageEffectPropFrameRate", 0, 25.0)
            props.values["OfxImageEffectPropFrameRange"] = [0.0, float(len(frames) - 1)]
            props.set("OfxImageClipPropConnected", 0, 1)
            made = Clip(name, props, rod=(x0, y0, x0 + w, y0 + h), layout=layout,
                        premultiplied=premultiplied, dtype=DEPTHS[depth][1])
            if name == "Source":
                made.frames = {float(t): f for t, f in enumerate(frames)}
            self.effect.clips[name] = made
        for name, param in self.in_context.params.items():
            default = param.props.values.get("OfxParamPropDefault", [None])[0]
            self.effect.params[name] = Param(name, param.kind, param.props, default)
        self.handle = host._handle_of(self.effect)
        assert host.call(self.plugin, "OfxActionCreateInstance", self.handle) == OK

    def set(self, name: str, value: Any) -> None:
        self.effect.params[name].value = value

    def animate(self, name: str, keys: list[tuple[float, float]]) -> None:
        self.effect.params[name].keys = sorted(keys)

    def render(self, time: float, tiles: tuple[int, int] = (1, 1)) -> int:
        """Frames needed, regions of interest and a render per tile; the first failure."""
        host, clip = self.host, self.effect.clips["Source"]
        x1, y1, x2, y2 = clip.rod
        temporal = self.descriptor.props.values.get("OfxImageEffectPropTemporalClipAccess",
                                                    [0])[0]
        if temporal:
            out = Props(OfxImageClipPropFrameRange_Source=[float(time), float(time)])
            status = host.call(self.plugin, "OfxImageEffectActionGetFramesNeeded", self.handle,
                               Props(OfxPropTime=float(time)), out)
            if status not in (OK, REPLY_DEFAULT):
                return status
        columns, rows = tiles
        xs = np.linspace(x1, x2, columns + 1).round().astype(int)
        ys = np.linspace(y1, y2, rows + 1).round().astype(int)
        for r, c in itertools.product(range(rows), range(columns)):
            window = [int(xs[c]), int(ys[r]), int(xs[c + 1]), int(ys[r + 1])]
            roi = Props(OfxImageClipPropRoI_Source=list(map(float, window)))
            host.call(self.plugin, "OfxImageEffectActionGetRegionsOfInterest", self.handle,
                      Props(OfxPropTime=float(time), OfxImageEffectPropRenderScale=[1.0, 1.0],
                            OfxImageEffectPropRegionOfInterest=list(map(float, window))), roi)
            assert roi.values["OfxImageClipPropRoI_Source"] == [float(v) for v in clip.rod]
            status = host.call(self.plugin, "OfxImageEffectActionRender", self.handle, Props(
                OfxPropTime=float(time), OfxImageEffectPropRenderWindow=window,
                OfxImageEffectPropRenderScale=[1.0, 1.0],
                OfxImageEffectPropFieldToRender="OfxFieldNone",
                OfxImageEffectPropSequentialRenderStatus=1,
                OfxImageEffectPropInteractiveRenderStatus=0))
            if status != OK:
                return status
        return OK

    def sequence(self, action: str, first: float, last: float) -> int:
        return self.host.call(self.plugin, f"OfxImageEffectAction{action}SequenceRender",
                              self.handle, Props(OfxImageEffectPropFrameRange=[first, last],
                                                 OfxImageEffectPropFrameStep=1.0,
                                                 OfxPropIsInteractive=0,
                                                 OfxImageEffectPropRenderScale=[1.0, 1.0]))

    def output(self, time: float) -> np.ndarray:
        """The Output image at ``time``, top-down, as the host holds it."""
        return self.effect.clips["Output"].output[float(time)][::-1]

    def close(self) -> None:
        assert self.host.call(self.plugin, "OfxActionDestroyInstance", self.handle) == OK
        assert self.host.call(self.plugin, "OfxActionUnload") == OK
