//! Pure rules with no HTTP and no database: DRF field parsing, Django's validators and every
//! message a client can see, worded exactly as Django 5.2 / DRF 3.18 / djoser 2.3 word them.

pub mod client;
pub mod email;
pub mod fields;
pub mod password;
pub mod permissions;
pub mod uid;
pub mod username;

pub use client::ClientInfo;
pub use fields::{FieldErrors, Input, RawFields};

/// Client-visible messages (DRF, Django and djoser wording).
pub mod messages {
    pub const REQUIRED: &str = "This field is required.";
    pub const NULL: &str = "This field may not be null.";
    pub const BLANK: &str = "This field may not be blank.";
    pub const NOT_A_STRING: &str = "Not a valid string.";
    pub const NULL_CHARACTERS: &str = "Null characters are not allowed.";
    pub const CONTROL_CHARACTERS: &str = "Control characters are not allowed.";
    pub const INVALID_EMAIL: &str = "Enter a valid email address.";
    pub const INVALID_USERNAME: &str = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";
    pub const USERNAME_TAKEN: &str = "A user with that username already exists.";
    pub const EMAIL_TAKEN: &str = "user with this email address already exists.";
    pub const INVALID_CREDENTIALS: &str = "Unable to log in with provided credentials.";
    pub const INVALID_PASSWORD: &str = "Invalid password.";
    pub const PASSWORD_MISMATCH: &str = "The two password fields didn't match.";
    pub const CANNOT_CREATE_USER: &str = "Unable to create account.";
    pub const NOT_AUTHENTICATED: &str = "Authentication credentials were not provided.";
    pub const PERMISSION_DENIED: &str = "You do not have permission to perform this action.";
    pub const NOT_FOUND: &str = "Not found.";
    /// DRF's `CursorPagination.invalid_cursor_message`.
    pub const INVALID_CURSOR: &str = "Invalid cursor";
    pub const INVALID_VALUE: &str = "Invalid value.";
    pub const NOT_A_BOOLEAN: &str = "Must be a valid boolean.";
    pub const INVALID_INTEGER: &str = "A valid integer is required.";
    pub const INVALID_APP_LABEL: &str =
        "Enter a valid app label: letters, digits and underscores, not starting with a digit.";
    pub const INVALID_CODENAME: &str = "Enter a valid codename: no spaces.";
    pub const GROUP_NAME_TAKEN: &str = "group with this name already exists.";
    pub const PERMISSION_TAKEN: &str = "The fields app_label, codename must make a unique set.";
    pub const NO_GROUP_MATCHES: &str = "No Group matches the given query.";
    pub const NO_PERMISSION_MATCHES: &str = "No Permission matches the given query.";
    pub const NO_USER_MATCHES: &str = "No User matches the given query.";
    pub const TOKEN_HEADER_EMPTY: &str = "Invalid token header. No credentials provided.";
    pub const TOKEN_HEADER_SPACES: &str =
        "Invalid token header. Token string should not contain spaces.";
    pub const TOKEN_HEADER_INVALID_CHARS: &str =
        "Invalid token header. Token string should not contain invalid characters.";
    pub const INVALID_TOKEN: &str = "Invalid token.";
    pub const USER_INACTIVE: &str = "User inactive or deleted.";
    pub const NON_FIELD_ERRORS: &str = "non_field_errors";
    pub const INVALID_UID: &str = "Invalid user id or user doesn't exist.";
    pub const INVALID_LINK_TOKEN: &str = "Invalid token for given user.";
    pub const STALE_TOKEN: &str = "Stale token for given user.";
    pub const EMAIL_NOT_FOUND: &str = "User with given email does not exist.";
    /// knox's words for AUTHD_TOKEN_LIMIT_POLICY=deny.
    pub const TOKEN_LIMIT: &str = "Maximum amount of tokens allowed per user exceeded.";
    /// The same words for AUTHD_API_KEYS_PER_USER.
    pub const API_KEY_LIMIT: &str = "Maximum amount of API keys allowed per user exceeded.";

    /// An API key's scope names a permission its creator does not hold (or that does not exist).
    pub fn permission_not_held(name: &str) -> String {
        format!("You do not hold the permission \"{name}\".")
    }
    pub const SERVICE_UNAVAILABLE: &str = "Service temporarily unavailable, try again later.";
    /// A body not whole by AUTHD_BODY_READ_TIMEOUT_SECONDS (nginx's `client_body_timeout` is 408).
    pub const BODY_TIMEOUT: &str = "Request body was not received in time.";
    /// A body hyper cannot decode (a malformed chunk).
    pub const MALFORMED_REQUEST: &str = "Malformed request.";

    pub fn max_length(limit: usize) -> String {
        format!("Ensure this field has no more than {limit} characters.")
    }

    /// djoser's USERNAME_MISMATCH_ERROR, `{0}` being the LOGIN_FIELD.
    pub fn username_mismatch(login_field: &str) -> String {
        format!("The two {login_field} fields didn't match.")
    }
}
