-- Hub schema, version 2: territories and the products each one sells. Publishing without an
-- explicit territory offers a bundle to the territories listing its product (every territory
-- when none does). Devices register their territory implicitly.

CREATE TABLE territories (
    name       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE territory_products (
    territory TEXT NOT NULL REFERENCES territories(name),
    product   TEXT NOT NULL,
    PRIMARY KEY (territory, product)
) STRICT, WITHOUT ROWID;
CREATE INDEX territory_products_by_product ON territory_products(product);

INSERT INTO territories (name, created_at) SELECT territory, MIN(created_at) FROM devices GROUP BY territory;
