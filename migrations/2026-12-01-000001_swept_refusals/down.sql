DROP INDEX bookings_refused_by_age;
DROP TABLE swept_refusals;
