# cython: language_level=3, boundscheck=False, wraparound=False
"""geodesy.implied_speed_python in C: the same number, in the same steps.

Two fixes in UTC with float coordinates (every fix the decoders make) are
measured here with C doubles and the C library's trigonometry, which is what
Python's math module calls, step for step as the Python function takes them.
Anything else (another time zone, an int, a non-finite value) goes to the
Python function itself, so the answer never differs.
"""

from cpython.datetime cimport PyDateTime_Check, datetime_tzinfo, import_datetime
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.math cimport M_PI, asin, cos, isfinite, pow, sin, sqrt
from libc.stdint cimport int64_t

from pipeline._instants cimport field_micros

from datetime import UTC

from schemas.gps import EARTH_RADIUS_M

import_datetime()

cdef object _UTC = UTC
cdef double _R = EARTH_RADIUS_M
# math.radians multiplies by this constant
cdef double _DEG_TO_RAD = M_PI / 180.0
# beyond 2**53 µs (285 years) a difference is no longer exact as a double
cdef int64_t _EXACT = 9007199254740992


cdef inline bint _utc_time(object t):
    return PyDateTime_Check(t) and datetime_tzinfo(t) is _UTC


cdef inline bint _plain_float(object x):
    return type(x) is float and isfinite(PyFloat_AS_DOUBLE(x))


cdef inline bint _radius(object x):
    return x is None or type(x) is float


def implied_speed(a, b):
    """geodesy.implied_speed_python of two reference fixes (time, lat, lon, accuracy)."""
    cdef double seconds, p1, p2, h, d, d_eff, acc_a, acc_b
    cdef int64_t diff
    if not (
        PyTuple_Check(a) and PyTuple_Check(b)
        and PyTuple_GET_SIZE(a) == 4 and PyTuple_GET_SIZE(b) == 4
    ):
        return _python(a, b)
    ta = <object>PyTuple_GET_ITEM(a, 0)
    tb = <object>PyTuple_GET_ITEM(b, 0)
    lat1 = <object>PyTuple_GET_ITEM(a, 1)
    lon1 = <object>PyTuple_GET_ITEM(a, 2)
    lat2 = <object>PyTuple_GET_ITEM(b, 1)
    lon2 = <object>PyTuple_GET_ITEM(b, 2)
    ra = <object>PyTuple_GET_ITEM(a, 3)
    rb = <object>PyTuple_GET_ITEM(b, 3)
    if not (
        _utc_time(ta) and _utc_time(tb)
        and _plain_float(lat1) and _plain_float(lon1)
        and _plain_float(lat2) and _plain_float(lon2)
        and _radius(ra) and _radius(rb)
    ):
        return _python(a, b)
    diff = field_micros(tb) - field_micros(ta)
    if diff <= 0:
        return None
    if diff >= _EXACT:
        return _python(a, b)
    # timedelta.total_seconds: the microseconds over 10**6, correctly rounded
    seconds = <double>diff / 1e6
    # haversine_m
    p1 = PyFloat_AS_DOUBLE(lat1) * _DEG_TO_RAD
    p2 = PyFloat_AS_DOUBLE(lat2) * _DEG_TO_RAD
    h = pow(sin((p2 - p1) / 2), 2.0) + cos(p1) * cos(p2) * pow(
        sin(((PyFloat_AS_DOUBLE(lon2) - PyFloat_AS_DOUBLE(lon1)) * _DEG_TO_RAD) / 2), 2.0
    )
    h = sqrt(h)
    d = 2 * _R * asin(h if h < 1.0 else 1.0)
    # max(0.0, d - (a.accuracy or 0.0) - (b.accuracy or 0.0))
    acc_a = 0.0 if ra is None else PyFloat_AS_DOUBLE(ra)
    acc_b = 0.0 if rb is None else PyFloat_AS_DOUBLE(rb)
    d_eff = d - acc_a - acc_b
    if not d_eff > 0.0:
        d_eff = 0.0
    return d_eff / seconds


def _python(a, b):
    from pipeline.stages.geodesy import implied_speed_python

    return implied_speed_python(a, b)
