-- Rows sitting in each table's DEFAULT partition though their period is one
-- tailhook manages (written past the prepared range): table and count.
SELECT s.tbl, s.strays FROM tailhook.partition_strays() s ORDER BY s.tbl
