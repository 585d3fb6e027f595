# cython: language_level=3
# The C extensions' arithmetic of instants, shared by the ones that cimport it
# (pipeline/sinks/postgres/_copy_binary.pyx, pipeline/stages/_geodesy.pyx).
# A change here makes both stale: their sources' digests cover this file.

from cpython.datetime cimport (
    PyDateTime_DATE_GET_HOUR,
    PyDateTime_DATE_GET_MICROSECOND,
    PyDateTime_DATE_GET_MINUTE,
    PyDateTime_DATE_GET_SECOND,
    PyDateTime_GET_DAY,
    PyDateTime_GET_MONTH,
    PyDateTime_GET_YEAR,
)
from libc.stdint cimport int64_t


cdef inline int64_t days_from_civil(int64_t y, int64_t m, int64_t d) noexcept:
    # days of a proleptic Gregorian date from 1970-01-01
    cdef int64_t era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline int64_t field_micros(object t) noexcept:
    # microseconds from 1970-01-01 of a datetime's fields, its zone not consulted
    # (the caller has checked that t is a datetime)
    cdef int64_t days = days_from_civil(
        PyDateTime_GET_YEAR(t), PyDateTime_GET_MONTH(t), PyDateTime_GET_DAY(t)
    )
    return (
        ((days * 24 + PyDateTime_DATE_GET_HOUR(t)) * 60 + PyDateTime_DATE_GET_MINUTE(t)) * 60
        + PyDateTime_DATE_GET_SECOND(t)
    ) * 1000000 + PyDateTime_DATE_GET_MICROSECOND(t)
