-- The sample schema of the sluice demo. docker-compose.yml runs it once on an empty volume (in
-- the `app` database); `sluice demo` runs it in its throwaway cluster. Plain SQL, so that psql
-- and a simple-query client both take it.
CREATE TABLE public.customers (
    id serial PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE,
    country char(2),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.products (
    id serial PRIMARY KEY,
    sku text NOT NULL UNIQUE,
    title text NOT NULL,
    price numeric(10,2) NOT NULL,
    attributes jsonb
);

CREATE TABLE public.orders (
    id serial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES public.customers (id),
    product_id int NOT NULL REFERENCES public.products (id),
    quantity int NOT NULL,
    amount numeric(10,2),
    status text NOT NULL,
    placed_at timestamptz NOT NULL DEFAULT now(),
    tags text[]
);

INSERT INTO public.customers (name, email, country)
VALUES ('Ada Lovelace', 'ada@example.com', 'GB'),
       ('Grace Hopper', 'grace@example.com', 'US'),
       ('Linus Torvalds', 'linus@example.com', 'FI');

INSERT INTO public.products (sku, title, price, attributes)
VALUES ('BK-001', 'Notes on the Analytical Engine', 42.50, '{"format": "hardcover", "pages": 66}'),
       ('HW-002', 'Mark I relay', 1999.99, '{"weight_kg": 4.5}'),
       ('SW-003', 'Kernel sources on tape', 9.99, NULL);

INSERT INTO public.orders (customer_id, product_id, quantity, amount, status, tags)
VALUES (1, 1, 1, 42.50, 'new', ARRAY['books']),
       (2, 2, 1, 1999.99, 'new', ARRAY['hardware', 'priority']);
