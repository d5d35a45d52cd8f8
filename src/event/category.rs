//! ECS `event.category` and `event.type` values as small bit sets.

macro_rules! ecs_set {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $bit:expr => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name(u32);

        impl $name {
            $(
                #[doc = concat!("ECS `", $text, "`.")]
                pub const $variant: $name = $name(1 << $bit);
            )*
            const ALL: &'static [($name, &'static str)] = &[$(($name::$variant, $text)),*];

            /// The empty set.
            pub const fn empty() -> Self {
                $name(0)
            }
            /// The union of two sets.
            pub const fn with(self, other: $name) -> Self {
                $name(self.0 | other.0)
            }
            /// Whether every member of `other` is in this set.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }
            /// Whether the set is empty.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }
            /// The ECS names of the members, in a fixed order.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::ALL.iter().filter(move |(v, _)| self.contains(*v)).map(|(_, n)| *n)
            }
            /// The member with this ECS name.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                self.with(rhs)
            }
        }
    };
}

ecs_set!(
    /// ECS `event.category`: the broad kind of activity.
    Category {
        AUTHENTICATION = 0 => "authentication",
        CONFIGURATION = 1 => "configuration",
        IAM = 2 => "iam",
        NETWORK = 3 => "network",
        PROCESS = 4 => "process",
        SESSION = 5 => "session",
        HOST = 6 => "host",
        FILE = 7 => "file",
        WEB = 8 => "web",
        DATABASE = 9 => "database",
        INTRUSION_DETECTION = 10 => "intrusion_detection",
        THREAT = 11 => "threat",
        VULNERABILITY = 12 => "vulnerability",
        API = 13 => "api",
        PACKAGE = 14 => "package",
        MALWARE = 15 => "malware",
    }
);

ecs_set!(
    /// ECS `event.type`: the sub-kind within the category.
    EventType {
        ACCESS = 0 => "access",
        ADMIN = 1 => "admin",
        ALLOWED = 2 => "allowed",
        CHANGE = 3 => "change",
        CONNECTION = 4 => "connection",
        CREATION = 5 => "creation",
        DELETION = 6 => "deletion",
        DENIED = 7 => "denied",
        END = 8 => "end",
        ERROR = 9 => "error",
        GROUP = 10 => "group",
        INFO = 11 => "info",
        INSTALLATION = 12 => "installation",
        PROTOCOL = 13 => "protocol",
        START = 14 => "start",
        USER = 15 => "user",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let c = Category::AUTHENTICATION | Category::IAM;
        assert_eq!(c.names().collect::<Vec<_>>(), ["authentication", "iam"]);
        assert_eq!(Category::from_name("iam"), Some(Category::IAM));
        assert_eq!(EventType::from_name("start"), Some(EventType::START));
        assert_eq!(EventType::from_name("bogus"), None);
        assert!(Category::empty().is_empty());
    }
}
