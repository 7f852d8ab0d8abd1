-- What each user may do, and where tenants and users may log in from. Each column holds the text form of
-- its type in src/access.rs, written and checked by wharf:
--   permissions       'all', 'none' or names joined by ',' from list, read, write, delete, rename, mkdir
--   path_permissions  a JSON object from a path as the user sees it to a permission set, e.g.
--                     '{"/in":"list,read,write"}'; the longest path that covers a path wins, else `permissions`
--   allowed_networks  CIDR blocks joined by ',' ('10.0.0.0/8,2001:db8::/32'); '' means anywhere
-- Columns on the rows themselves keep the login lookup one indexed query and leave nothing behind when a user
-- or tenant is deleted.
ALTER TABLE users ADD COLUMN permissions TEXT NOT NULL DEFAULT 'all';
ALTER TABLE users ADD COLUMN path_permissions TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN allowed_networks TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN allowed_networks TEXT NOT NULL DEFAULT '';
