-- Permit numbers as CONTRACT §1 says: `{CATEGORY_PREFIX}{YYYY}{NNNNN}` (`CUD202600001`).
-- Permits issued here were numbered `CUD-2026-000001`, the shape of a case reference, so a
-- message quoting one could be filed in a stranger's case. Those numbers are renamed (the
-- same prefix, year and sequence) and the old number is kept as an alias that still finds
-- the permit (the police's look-up, the printed permit in the holder's hands). Imported
-- numbers are never renamed, nor is a number whose new form is already taken.
-- Journals and case timelines are history and keep the text they had; the verification
-- token of the printed QR code does not change.
-- Keep in step with ../postgres/0019_permit_numbers.sql.
CREATE TABLE permit_aliases (
    alias  TEXT NOT NULL PRIMARY KEY,
    permit TEXT NOT NULL
);
CREATE INDEX permit_aliases_permit ON permit_aliases(permit);

INSERT INTO permit_aliases (alias, permit)
SELECT old, new FROM (
    SELECT DISTINCT permit AS old,
           substr(permit, 1, length(permit) - 12) || substr(permit, length(permit) - 10, 4) ||
           CASE WHEN substr(permit, length(permit) - 5, 1) = '0'
                THEN substr(permit, length(permit) - 4)
                ELSE substr(permit, length(permit) - 5) END AS new
    FROM permit_rows
    WHERE source = 'issued'
      AND length(permit) BETWEEN 14 AND 17
      AND substr(permit, 1, length(permit) - 12) NOT GLOB '*[^A-Z]*'
      AND substr(permit, length(permit) - 11, 1) = '-'
      AND substr(permit, length(permit) - 10, 4) GLOB '[0-9][0-9][0-9][0-9]'
      AND substr(permit, length(permit) - 6, 1) = '-'
      AND substr(permit, length(permit) - 5) GLOB '[0-9][0-9][0-9][0-9][0-9][0-9]'
) renamed
WHERE NOT EXISTS (SELECT 1 FROM permit_rows taken WHERE taken.permit = renamed.new);

UPDATE permit_rows
SET permit = (SELECT a.permit FROM permit_aliases a WHERE a.alias = permit_rows.permit)
WHERE permit IN (SELECT alias FROM permit_aliases);

UPDATE permit_events
SET permit = (SELECT a.permit FROM permit_aliases a WHERE a.alias = permit_events.permit)
WHERE permit IN (SELECT alias FROM permit_aliases);
