public enum TunnatKit {}
