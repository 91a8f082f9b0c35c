-- What classes.sql needs in place on the source and, as its DBA would prepare it, on the
-- target (run as a superuser before loading or copying): nightcopy never creates access
-- methods, extensions or functions.
CREATE ACCESS METHOD fid_heap TYPE TABLE HANDLER heap_tableam_handler;
CREATE EXTENSION citext;
CREATE SCHEMA fid_code;
GRANT USAGE ON SCHEMA fid_code TO PUBLIC;
CREATE FUNCTION fid_code.is_positive(n integer) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT AS 'SELECT n > 0';
