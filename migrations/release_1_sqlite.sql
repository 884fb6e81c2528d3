-- The schema release 1 of shopbot created (create_all at commit 2ef8c1d), as SQLite keeps it.
-- A frozen record: test_migrations.py checks that revision 0001 creates exactly this.

CREATE TABLE categories (
	id INTEGER NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	position INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);

CREATE TABLE products (
	id INTEGER NOT NULL, 
	category_id INTEGER NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	description TEXT NOT NULL, 
	price INTEGER NOT NULL, 
	description_file_id VARCHAR(255), 
	description_file_type VARCHAR(16), 
	hidden_content TEXT NOT NULL, 
	hidden_file_id VARCHAR(255), 
	hidden_file_type VARCHAR(16), 
	is_active BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(category_id) REFERENCES categories (id) ON DELETE RESTRICT
);

CREATE TABLE purchases (
	id INTEGER NOT NULL, 
	user_id INTEGER NOT NULL, 
	product_id INTEGER NOT NULL, 
	price INTEGER NOT NULL, 
	currency VARCHAR(8) NOT NULL, 
	payment_type VARCHAR(16) NOT NULL, 
	payment_id VARCHAR(255), 
	created_at DATETIME NOT NULL, 
	refunded_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE RESTRICT, 
	FOREIGN KEY(product_id) REFERENCES products (id) ON DELETE RESTRICT, 
	UNIQUE (payment_id)
);

CREATE TABLE settings (
	"key" VARCHAR(64) NOT NULL, 
	value VARCHAR(255) NOT NULL, 
	PRIMARY KEY ("key")
);

CREATE TABLE stock_items (
	id INTEGER NOT NULL, 
	product_id INTEGER NOT NULL, 
	content TEXT NOT NULL, 
	file_id VARCHAR(255), 
	file_type VARCHAR(16), 
	purchase_id INTEGER, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(product_id) REFERENCES products (id) ON DELETE CASCADE, 
	UNIQUE (purchase_id), 
	FOREIGN KEY(purchase_id) REFERENCES purchases (id) ON DELETE RESTRICT
);

CREATE TABLE users (
	id INTEGER NOT NULL, 
	telegram_id BIGINT NOT NULL, 
	username VARCHAR(64), 
	first_name VARCHAR(128) NOT NULL, 
	language_code VARCHAR(16) NOT NULL, 
	created_at DATETIME NOT NULL, 
	is_blocked BOOLEAN NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (telegram_id)
);

CREATE TABLE waitlist (
	id INTEGER NOT NULL, 
	product_id INTEGER NOT NULL, 
	user_id INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (product_id, user_id), 
	FOREIGN KEY(product_id) REFERENCES products (id) ON DELETE CASCADE, 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX ix_products_category_active ON products (category_id, is_active, id);

CREATE INDEX ix_purchases_product_user ON purchases (product_id, user_id);

CREATE INDEX ix_purchases_refunded ON purchases (refunded_at);

CREATE INDEX ix_purchases_sales ON purchases (created_at, refunded_at, currency, price, product_id);

CREATE INDEX ix_purchases_user_created ON purchases (user_id, created_at);

CREATE INDEX ix_stock_items_product_unsold ON stock_items (product_id, purchase_id, id);

CREATE INDEX ix_users_created_at ON users (created_at);
