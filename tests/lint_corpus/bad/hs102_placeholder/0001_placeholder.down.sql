UPDATE settings SET value = 'light' WHERE name = 'theme';
