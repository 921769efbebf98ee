-- Sample table for the sluice demo: docker-compose runs this once on an empty volume.
CREATE TABLE public.orders (
    id serial PRIMARY KEY,
    customer text NOT NULL,
    amount numeric(10,2),
    status text,
    placed_at timestamptz DEFAULT now(),
    tags text[]
);
INSERT INTO public.orders (customer, amount, status, tags)
VALUES ('ada', 42.50, 'new', ARRAY['books']),
       ('grace', 1999.99, 'new', ARRAY['hardware', 'priority']);
