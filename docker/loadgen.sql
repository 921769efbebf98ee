-- One round of the demo's load generator: docker-compose.yml's `loadgen` service runs it in a
-- loop with psql, `sluice demo` runs it a fixed number of times. Whatever the data, every round
-- makes exactly six row changes: a new customer, two new orders, one order shipped, one shipped
-- order deleted, one product's price changed.
INSERT INTO public.customers (name, email, country)
SELECT 'Customer ' || n, 'customer' || n || '@example.com', (ARRAY['DE', 'FR', 'US', 'JP'])[1 + n % 4]
FROM (SELECT coalesce(max(id), 0) + 1 AS n FROM public.customers) AS next;

INSERT INTO public.orders (customer_id, product_id, quantity, amount, status, tags)
SELECT c.id, p.id, q.quantity, p.price * q.quantity, 'new', ARRAY['web']
FROM (SELECT id FROM public.customers ORDER BY random() LIMIT 1) AS c,
     (SELECT id, price FROM public.products ORDER BY random() LIMIT 1) AS p,
     (SELECT 1 + floor(random() * 3)::int AS quantity) AS q;

INSERT INTO public.orders (customer_id, product_id, quantity, amount, status)
SELECT c.id, p.id, 1, p.price, 'new'
FROM (SELECT id FROM public.customers ORDER BY random() LIMIT 1) AS c,
     (SELECT id, price FROM public.products ORDER BY random() LIMIT 1) AS p;

UPDATE public.orders SET status = 'shipped'
WHERE id = (SELECT min(id) FROM public.orders WHERE status = 'new');

DELETE FROM public.orders
WHERE id = (SELECT min(id) FROM public.orders WHERE status = 'shipped');

UPDATE public.products SET price = round(price * (0.9 + random() * 0.2)::numeric, 2)
WHERE id = (SELECT id FROM public.products ORDER BY random() LIMIT 1);
