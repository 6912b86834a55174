-- The permit register: one row per authorised plate of a permit over one validity period
-- (CONTRACT §6.2), whether imported from an outsourced register or issued here.
-- Keep in step with ../sqlite/0007_permits.sql.
CREATE TABLE permit_rows (
    id                 BIGSERIAL PRIMARY KEY,
    permit             TEXT    NOT NULL,
    category           TEXT    NOT NULL,
    holder_fiscal_code TEXT    NOT NULL,
    holder_name        TEXT    NOT NULL,
    plate              TEXT    NOT NULL,
    country            TEXT    NOT NULL,
    valid_from         BIGINT  NOT NULL,
    valid_to           BIGINT  NOT NULL,
    status             TEXT    NOT NULL,
    source             TEXT    NOT NULL,
    recorded_at        BIGINT  NOT NULL,
    recorded_by        TEXT    NOT NULL,
    UNIQUE (permit, plate, valid_from)
);
CREATE INDEX permit_rows_plate ON permit_rows(plate, country);
CREATE INDEX permit_rows_validity ON permit_rows(valid_to, valid_from);
