-- ES256 (P-256) signing keys beside RS256 ones (keys.algorithm): a key's
-- public half is RSA's (n, e) or P-256's (x, y), as its algorithm says.
ALTER TABLE signing_keys
    ALTER COLUMN public_n DROP NOT NULL,
    ALTER COLUMN public_e DROP NOT NULL,
    ADD COLUMN public_x bytea,
    ADD COLUMN public_y bytea,
    ADD CONSTRAINT signing_keys_public_half CHECK (
        (algorithm = 'RS256' AND public_n IS NOT NULL AND public_e IS NOT NULL
            AND public_x IS NULL AND public_y IS NULL)
        OR (algorithm = 'ES256' AND public_x IS NOT NULL AND public_y IS NOT NULL
            AND public_n IS NULL AND public_e IS NULL)
    );
