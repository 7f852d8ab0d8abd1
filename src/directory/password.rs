//! argon2id password hashes (PHC strings).
