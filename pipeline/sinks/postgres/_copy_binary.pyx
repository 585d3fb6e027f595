# cython: language_level=3, boundscheck=False, wraparound=False
"""copy_binary.encode_rows_python in C: the same bytes, the same errors.

Values of the common kinds are written straight into one buffer: a UTC
datetime from its fields, a float, a str's UTF-8, a UUID's bytes, a point
tuple, orjson's text of a JSON value. Anything else (another time zone, a
naive datetime, a point that is not a tuple) goes through the same Python
function as in copy_binary, so the meaning never differs.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.datetime cimport PyDateTime_Check, datetime_tzinfo, import_datetime
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from pipeline._instants cimport field_micros

from datetime import UTC
from uuid import UUID

from orjson import dumps as _dumps

from pipeline.sinks.postgres.copy_binary import (
    FLOAT,
    JSONB,
    POINT,
    TEXT,
    TIME,
    UUID_,
    _field,
    rejected,
    wrong_width,
)

import_datetime()

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL

cdef extern from *:
    """
    /* the 16 big-endian bytes of a UUID's int (0 <= int < 2**128): what
       UUID.bytes returns, without that property's Python frame */
    static int eriop_uuid_bytes(PyObject* n, unsigned char* out) {
    #if PY_VERSION_HEX >= 0x030D0000
        return _PyLong_AsByteArray((PyLongObject*)n, out, 16, 0, 0, 1);
    #else
        return _PyLong_AsByteArray((PyLongObject*)n, out, 16, 0, 0);
    #endif
    }
    """
    int eriop_uuid_bytes(object n, unsigned char* out) except -1

cdef object _UTC = UTC
cdef object _UUID = UUID
cdef int _K_TIME = TIME
cdef int _K_UUID = UUID_
cdef int _K_TEXT = TEXT
cdef int _K_FLOAT = FLOAT
cdef int _K_POINT = POINT
cdef int _K_JSONB = JSONB
# 9999-12-31 23:59:59.999999 and 0001-01-01 UTC, in µs from 2000-01-01: the
# infinities, as asyncpg writes them (pipeline.clients.postgres)
cdef int64_t _AT_INFINITY = 252455615999999999
cdef int64_t _AT_NEGATIVE_INFINITY = -63082281600000000
cdef int64_t _INFINITY = 0x7FFFFFFFFFFFFFFF
# PostgreSQL counts from 2000-01-01: 10,957 days after 1970-01-01
cdef int64_t _MICROS_1970_TO_2000 = 10957 * 86400 * 1000000
cdef int64_t _NEGATIVE_INFINITY = -_INFINITY - 1


cdef struct Buf:
    char* data
    Py_ssize_t size
    Py_ssize_t cap


cdef int _reserve(Buf* b, Py_ssize_t n) except -1:
    cdef Py_ssize_t cap
    cdef char* grown
    if b.size + n <= b.cap:
        return 0
    cap = b.cap * 2
    while cap < b.size + n:
        cap *= 2
    grown = <char*>PyMem_Realloc(b.data, cap)
    if grown == NULL:
        raise MemoryError()
    b.data = grown
    b.cap = cap
    return 0


cdef inline void _u16(char* p, uint32_t v) noexcept:
    p[0] = <char>((v >> 8) & 0xFF)
    p[1] = <char>(v & 0xFF)


cdef inline void _u32(char* p, uint32_t v) noexcept:
    p[0] = <char>((v >> 24) & 0xFF)
    p[1] = <char>((v >> 16) & 0xFF)
    p[2] = <char>((v >> 8) & 0xFF)
    p[3] = <char>(v & 0xFF)


cdef inline void _u64(char* p, uint64_t v) noexcept:
    cdef int i
    for i in range(8):
        p[i] = <char>((v >> (56 - 8 * i)) & 0xFF)


cdef inline void _u32le(char* p, uint32_t v) noexcept:
    cdef int i
    for i in range(4):
        p[i] = <char>((v >> (8 * i)) & 0xFF)


cdef inline void _u64le(char* p, uint64_t v) noexcept:
    cdef int i
    for i in range(8):
        p[i] = <char>((v >> (8 * i)) & 0xFF)


cdef inline uint64_t _bits(double d) noexcept:
    cdef uint64_t u
    memcpy(&u, &d, 8)
    return u


cdef int _put_bytes(Buf* b, const char* src, Py_ssize_t n) except -1:
    _reserve(b, 4 + n)
    _u32(b.data + b.size, <uint32_t>n)
    memcpy(b.data + b.size + 4, src, n)
    b.size += 4 + n
    return 0


cdef int _put_python(Buf* b, int kind, object value) except -1:
    # copy_binary's own encoding of one field (its length prefix included)
    cdef bytes field = _field(kind, value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(field)
    _reserve(b, n)
    memcpy(b.data + b.size, PyBytes_AS_STRING(field), n)
    b.size += n
    return 0


cdef int _put(Buf* b, int kind, object value) except -1:
    cdef int64_t micros
    cdef double x, y
    cdef const char* text
    cdef Py_ssize_t n
    cdef bytes raw
    cdef char* p
    if kind == _K_TIME:
        if PyDateTime_Check(value) and datetime_tzinfo(value) is _UTC:
            micros = field_micros(value) - _MICROS_1970_TO_2000
            if micros == _AT_INFINITY:
                micros = _INFINITY
            elif micros == _AT_NEGATIVE_INFINITY:
                micros = _NEGATIVE_INFINITY
            _reserve(b, 12)
            p = b.data + b.size
            _u32(p, 8)
            _u64(p + 4, <uint64_t>micros)
            b.size += 12
            return 0
    elif kind == _K_FLOAT:
        x = value
        _reserve(b, 12)
        p = b.data + b.size
        _u32(p, 8)
        _u64(p + 4, _bits(x))
        b.size += 12
        return 0
    elif kind == _K_TEXT:
        if PyUnicode_Check(value):
            text = PyUnicode_AsUTF8AndSize(value, &n)
            return _put_bytes(b, text, n)
    elif kind == _K_UUID:
        if type(value) is _UUID:
            _reserve(b, 20)
            p = b.data + b.size
            _u32(p, 16)
            eriop_uuid_bytes(value.int, <unsigned char*>(p + 4))
            b.size += 20
            return 0
        if not PyUnicode_Check(value):
            raw = getattr(value, "bytes", None)
            if raw is not None and type(raw) is bytes and PyBytes_GET_SIZE(raw) == 16:
                return _put_bytes(b, PyBytes_AS_STRING(raw), 16)
    elif kind == _K_POINT:
        if PyTuple_Check(value) and PyTuple_GET_SIZE(value) >= 2:
            x = <object>PyTuple_GET_ITEM(value, 0)
            y = <object>PyTuple_GET_ITEM(value, 1)
            _reserve(b, 29)
            p = b.data + b.size
            _u32(p, 25)
            p[4] = 1  # little-endian EWKB, as encode_point writes it
            _u32le(p + 5, 0x20000001)
            _u32le(p + 9, 4326)
            _u64le(p + 13, _bits(x))
            _u64le(p + 21, _bits(y))
            b.size += 29
            return 0
    elif kind == _K_JSONB:
        if type(value) is dict and not value:
            _reserve(b, 7)
            p = b.data + b.size
            _u32(p, 3)
            p[4] = 1
            p[5] = b"{"
            p[6] = b"}"
            b.size += 7
            return 0
        raw = _dumps(value)
        n = PyBytes_GET_SIZE(raw)
        _reserve(b, 5 + n)
        p = b.data + b.size
        _u32(p, <uint32_t>(n + 1))
        p[4] = 1  # jsonb's version
        memcpy(p + 5, PyBytes_AS_STRING(raw), n)
        b.size += 5 + n
        return 0
    return _put_python(b, kind, value)


def encode_rows(rows, kinds, names):
    """The rows' tuples (one value per column, None for NULL) as binary COPY rows."""
    cdef Buf b
    cdef Py_ssize_t ncols = len(kinds)
    cdef Py_ssize_t i = 0, j
    cdef int kind
    cdef int* ks
    cdef object row, value
    ks = <int*>PyMem_Malloc(max(ncols, 1) * sizeof(int))
    if ks == NULL:
        raise MemoryError()
    b.cap = 4096
    b.size = 0
    b.data = <char*>PyMem_Malloc(b.cap)
    if b.data == NULL:
        PyMem_Free(ks)
        raise MemoryError()
    try:
        for j in range(ncols):
            ks[j] = kinds[j]
        for row in rows:
            if not PyTuple_Check(row):
                row = tuple(row)
            if PyTuple_GET_SIZE(row) != ncols:
                raise wrong_width(names, i, PyTuple_GET_SIZE(row))
            _reserve(&b, 2)
            _u16(b.data + b.size, <uint32_t>ncols)
            b.size += 2
            for j in range(ncols):
                value = <object>PyTuple_GET_ITEM(row, j)
                if value is None:
                    _reserve(&b, 4)
                    _u32(b.data + b.size, 0xFFFFFFFF)
                    b.size += 4
                    continue
                try:
                    _put(&b, ks[j], value)
                except Exception as exc:
                    raise rejected(names, i, j, exc) from exc
            i += 1
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        PyMem_Free(b.data)
        PyMem_Free(ks)
