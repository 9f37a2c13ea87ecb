-- Every screening decision, allowed as well as blocked, of each stage that ran (the rules, then
-- the external moderation API when one is configured): the compliance audit trail. It replaces
-- moderation_log, which kept the rules' blocks alone; those rows move over as blocked decisions
-- of the rules stage, by an unknown key (the log never recorded one).

CREATE TABLE moderation_decisions (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    -- the API key that submitted the prompt; NULL for rows older than this table
    key_id         TEXT REFERENCES api_keys (id),
    verdict        TEXT NOT NULL CHECK (verdict IN ('allowed', 'blocked')),
    stage          TEXT NOT NULL CHECK (stage IN ('rules', 'external')),
    -- what matched: the rule's id, or the external API's flagged category names; NULL if none
    rule_id        TEXT,
    -- taskhook's category of a blocked prompt; NULL when allowed, or blocked for want of an answer
    category       TEXT,
    -- why the external stage gave no answer (timeout, unreachable, http_503, bad_response)
    error          TEXT,
    prompt_sha256  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    CHECK (verdict = 'blocked' OR category IS NULL)
) STRICT;

INSERT INTO moderation_decisions
    (id, account_id, key_id, verdict, stage, rule_id, category, error, prompt_sha256, created_at)
    SELECT id, account_id, NULL, 'blocked', 'rules', rule_id, category, NULL, prompt_sha256,
           created_at
    FROM moderation_log;
DROP TABLE moderation_log;

-- An account's decisions newest first, and those it allowed (nearly all of them).
CREATE INDEX moderation_decisions_by_account ON moderation_decisions (account_id, id);
-- Blocks are rare: a filter on them must not walk an account's whole history to find a page.
-- Partial, so the allowed decision every submit writes touches none of these.
CREATE INDEX moderation_blocks_by_account ON moderation_decisions (account_id, id)
    WHERE verdict = 'blocked';
CREATE INDEX moderation_blocks_by_account_category ON moderation_decisions
    (account_id, category, id) WHERE category IS NOT NULL;
-- The same for an admin key's listing across accounts (unfiltered, it walks the primary key).
CREATE INDEX moderation_blocks ON moderation_decisions (id) WHERE verdict = 'blocked';
CREATE INDEX moderation_blocks_by_category ON moderation_decisions (category, id)
    WHERE category IS NOT NULL;
