//! The fs backend: each tenant's tree is a folder; uploads go to a hidden temporary name and are renamed
//! into place on commit, so a failed upload is never visible.
